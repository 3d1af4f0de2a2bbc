//! The web client's files: compiled into the binary (default) or read from `--static-dir`.
//! Paths are checked segment by segment and, on disk, canonicalized: nothing outside the root.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use include_dir::{include_dir, Dir};

use crate::settings::StaticSource;

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../static");

#[derive(Clone, Debug)]
pub(crate) enum StaticFiles {
    Embedded,
    Dir(PathBuf),
}

impl StaticFiles {
    /// Opens the source; a directory that cannot be read is an error naming the path.
    pub(crate) fn open(source: &StaticSource) -> io::Result<Self> {
        match source {
            StaticSource::Embedded => Ok(StaticFiles::Embedded),
            StaticSource::Dir(dir) => {
                let root = dir.canonicalize().and_then(|root| {
                    std::fs::read_dir(&root)?;
                    Ok(root)
                });
                root.map(StaticFiles::Dir).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot read --static-dir {}: {e}", dir.display()),
                    )
                })
            }
        }
    }

    /// The file for a request path and its content type, or `None` (404).
    pub(crate) async fn get(&self, request_path: &str) -> Option<(Bytes, &'static str)> {
        let relative = safe_relative(request_path)?;
        let body = match self {
            StaticFiles::Embedded => Bytes::from_static(EMBEDDED.get_file(&relative)?.contents()),
            StaticFiles::Dir(root) => {
                let path = root.join(&relative).canonicalize().ok()?;
                if !path.starts_with(root) || !path.is_file() {
                    return None;
                }
                Bytes::from(tokio::fs::read(&path).await.ok()?)
            }
        };
        Some((body, content_type(&relative)))
    }
}

/// `"/"` is `index.html`; any `..`, `.`, empty segment, backslash or NUL is refused.
fn safe_relative(request_path: &str) -> Option<String> {
    let trimmed = request_path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Some("index.html".to_owned());
    }
    let ok = trimmed.split('/').all(|segment| {
        !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['\\', '\0'])
    });
    ok.then(|| trimmed.to_owned())
}

fn content_type(path: &str) -> &'static str {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => mime_guess::from_path(path)
            .first_raw()
            .unwrap_or("application/octet-stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        assert_eq!(safe_relative("/"), Some("index.html".into()));
        assert_eq!(safe_relative("/app.js"), Some("app.js".into()));
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/./x",
            "/a//b",
            "/a\\..\\b",
            "/x\0",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types_are_right() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
    }
}
