//! What the server answers before it serves: while it starts (the message store's open, which
//! after a crash can take a minute), `/healthz` says it is alive and every other request gets
//! `503` with `retry-after`, so a supervisor's liveness probe does not kill a server in the
//! middle of its repair, and a client is told to wait rather than left on a silent socket.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

/// The answer to one request while the server starts.
pub(crate) fn response<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "ok\n"),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: opening the message store, try again shortly\n",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("valid"),
    );
    headers.insert(CONNECTION, "close".parse().expect("valid"));
    if status != StatusCode::OK {
        headers.insert(RETRY_AFTER, "1".parse().expect("valid"));
    }
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

    fn get(path: &str) -> Response<Full<Bytes>> {
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
