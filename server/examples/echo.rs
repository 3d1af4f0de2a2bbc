//! An echo server on the chat server's real connection layer (the same frame reader, validation
//! and writer as `/ws`), for the Autobahn|Testsuite: every message comes back as it came.
//!
//! `cargo run --release -p chat-server --example echo -- --addr 127.0.0.1:9001`

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use chat_server::{serve_echo, ConnLimits};
use clap::Parser;
use http_body_util::Empty;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: SocketAddr,
    /// Autobahn sends messages up to 16 MiB in its performance cases.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_bytes: usize,
}

async fn upgrade(
    mut req: Request<hyper::body::Incoming>,
    limits: ConnLimits,
) -> Result<Response<Empty<Bytes>>, String> {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    let (response, upgraded) =
        fastwebsockets::upgrade::upgrade(&mut req).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Ok(ws) = upgraded.await {
            serve_echo(ws.into_inner(), limits).await;
        }
    });
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let limits = ConnLimits {
        max_message_bytes: args.max_message_bytes,
        write_timeout: Duration::from_secs(30),
        ..ConnLimits::default()
    };
    println!("echo server on ws://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = service_fn(move |req| upgrade(req, limits));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}
