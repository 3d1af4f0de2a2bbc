//! What the server answers before it serves: while it starts (the message store's open, which
//! after a crash can take a minute), `/healthz` says it is alive and every other request gets
//! `503` with `retry-after`, so a supervisor's liveness probe does not kill a server in the
//! middle of its repair, and a client is told to wait rather than left on a silent socket.

use std::convert::Infallible;
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::http::{text, Body};
use crate::security_headers;

/// The answer to one request while the server starts.
pub(crate) fn response<B>(req: &Request<B>) -> Response<Body> {
    let mut response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        _ => {
            let body = "starting: opening the message store, try again shortly\n";
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, body);
            (response.headers_mut()).insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    security_headers::add(headers);
    response
}

/// Answers one request on `io`, then closes it; a client gets `header_timeout` to send it.
pub(crate) async fn answer<I>(io: I, header_timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(|req| async move { Ok::<_, Infallible>(response(&req)) });
    let served = (http1::Builder::new())
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "a request while starting failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response<Body> {
        response(&Request::get(path).body(()).expect("a request"))
    }

    #[test]
    fn liveness_is_yes_and_everything_else_waits() {
        assert_eq!(get("/healthz").status(), StatusCode::OK);
        for path in ["/readyz", "/", "/ws", "/status", "/metrics"] {
            let answer = get(path);
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(answer.headers()[RETRY_AFTER], "1", "{path}");
        }
        let post = response(&Request::post("/healthz").body(()).expect("a request"));
        assert_eq!(post.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
