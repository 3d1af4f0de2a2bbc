//! HTTP/1.1 responses as the server writes them: a sequence of well-formed responses, and after
//! a `101 Switching Protocols` the WebSocket stream.

use crate::websocket::{check_server_frames, End};

/// What one connection's output was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Status codes of the responses, in order.
    pub statuses: Vec<u16>,
    /// `Some` if the connection was upgraded: how the WebSocket stream ended.
    pub websocket: Option<End>,
}

/// Checks that `out` is zero or more complete HTTP/1.1 responses (each a parseable head with a
/// valid status and a body of exactly its declared length), optionally ending with a `101`
/// followed by a valid WebSocket stream. `lenient_bodies` stops after the first response head:
/// a response to `HEAD` declares a length it does not send, and without parsing the requests
/// the responses after it cannot be delimited.
pub fn check_responses(mut out: &[u8], lenient_bodies: bool) -> Result<Transcript, String> {
    let mut statuses = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return Err(format!(
                    "response {}: truncated head: {:?}",
                    statuses.len(),
                    String::from_utf8_lossy(out)
                ))
            }
            Err(e) => {
                return Err(format!(
                    "response {}: malformed head ({e}): {:?}",
                    statuses.len(),
                    String::from_utf8_lossy(out)
                ))
            }
        };
        // HTTP/1.0 requests are answered in kind.
        if !matches!(response.version, Some(0 | 1)) {
            return Err(format!("response version {:?}", response.version));
        }
        let status = response.code.expect("complete");
        if !(100..=599).contains(&status) {
            return Err(format!("status {status}"));
        }
        let mut content_length = None;
        let mut chunked = false;
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| format!("bad content-length {:?}", header.value))?;
                if content_length.replace(value).is_some() {
                    return Err("two content-length headers".to_owned());
                }
            }
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
        }
        if chunked {
            return Err("the server never streams: unexpected transfer-encoding".to_owned());
        }
        out = &out[head_len..];
        statuses.push(status);
        if status == 101 {
            let end = check_server_frames(out).map_err(|e| format!("after 101: {e}"))?;
            return Ok(Transcript {
                statuses,
                websocket: Some(end),
            });
        }
        let body = match (status, content_length) {
            (100..=199 | 204 | 304, _) => 0,
            (_, Some(len)) => len,
            (_, None) => return Err(format!("status {status} without content-length")),
        };
        if lenient_bodies {
            // This may answer a HEAD (a length without a body): what follows cannot be
            // delimited without parsing the requests, so the check stops here.
            break;
        }
        if out.len() < body {
            return Err(format!(
                "body shorter ({}) than content-length {body}",
                out.len()
            ));
        }
        out = &out[body..];
    }
    Ok(Transcript {
        statuses,
        websocket: None,
    })
}
