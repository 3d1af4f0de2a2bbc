//! The engine stays sans-IO: no runtime, network or randomness crate anywhere in its dependency
//! tree, and no clock read nor socket opened in its source. Time and entropy can only come in as
//! inputs (an address may: it is a value).

use std::path::Path;
use std::process::Command;

/// Crates that would let the engine do I/O, read time or draw randomness on its own.
const FORBIDDEN: [&str; 10] = [
    "tokio",
    "hyper",
    "mio",
    "socket2",
    "async-std",
    "smol",
    "rand",
    "getrandom",
    "fastrand",
    "chrono",
];

#[test]
fn the_dependency_tree_has_no_runtime_socket_or_randomness_crate() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "chat-engine",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"serde_json"),
        "the tree was really listed: {crates:?}"
    );
    for forbidden in FORBIDDEN {
        assert!(
            !crates.contains(&forbidden),
            "chat-engine depends on {forbidden}:\n{tree}"
        );
    }
}

#[test]
fn the_source_never_reads_a_clock() {
    let mut offenders = Vec::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut offenders,
    );
    assert!(
        offenders.is_empty(),
        "clock reads in engine/src: {offenders:?}"
    );
}

#[test]
fn the_test_kit_is_built_only_for_tests() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("readable lib.rs");
    assert!(
        lib.contains("#[cfg(any(test, feature = \"test-kit\"))]\npub mod test_kit;"),
        "test_kit must stay behind cfg(test) or the test-kit feature"
    );
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("readable Cargo.toml");
    assert!(
        !manifest.contains("default = [\"test-kit\"]"),
        "the test kit is never a default feature"
    );
}

fn visit(dir: &Path, offenders: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            // Scenario tests may make up instants; only the engine itself must not read clocks.
            if path.file_name().is_some_and(|n| n != "tests") {
                visit(&path, offenders);
            }
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("utf-8 source");
        // The test shell plays the outside world, clock included; it is compiled only for tests
        // (`the_test_kit_is_built_only_for_tests` holds it to that).
        if path.file_name().is_some_and(|n| n == "test_kit.rs") {
            continue;
        }
        // Unit tests at the bottom of a file may fabricate an origin instant; the engine may not.
        let engine_code = source
            .lines()
            .take_while(|line| line.trim() != "#[cfg(test)]");
        for (number, line) in engine_code.enumerate() {
            if [
                "Instant::now",
                "SystemTime::now",
                "thread_rng",
                "RandomState",
                "TcpStream",
                "TcpListener",
                "UdpSocket",
            ]
            .iter()
            .any(|c| line.contains(c))
            {
                offenders.push(format!(
                    "{}:{}: {}",
                    path.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
}
