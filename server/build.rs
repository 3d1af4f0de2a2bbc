//! The web client is embedded at build time: rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=../static");
}
