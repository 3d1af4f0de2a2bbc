//! HTTP routing: the web client and its config, the WebSocket upgrade, status, metrics, health,
//! operator kick.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chat_engine::{JoinRequest, Stats};
use fastwebsockets::upgrade::UpgradeFut;
use futures_util::future::Either;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::admin::{self, FailureLog, Kicked};
use crate::clock::Clock;
use crate::connection::{serve_chat, serve_chat_tcp, ChatStart};
use crate::hub::HubHandle;
use crate::metrics::Metrics;
use crate::origin::OriginPolicy;
use crate::per_ip::{IpSlot, PerIp, Refusal};
use crate::security_headers;
use crate::settings::{ConnLimits, Settings};
use crate::static_files::StaticFiles;
use crate::untrusted::clip;
use crate::write_deadline::WriteDeadline;

pub(crate) type Body = Full<Bytes>;

/// Everything request handlers share.
pub(crate) struct AppState {
    pub(crate) settings: Settings,
    pub(crate) hub: HubHandle,
    pub(crate) stats: watch::Receiver<Stats>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) statics: StaticFiles,
    pub(crate) clock: Clock,
    /// Which pages may open WebSockets (`--allowed-origin`, `--public-url`).
    pub(crate) origins: OriginPolicy,
    /// Failed `/admin/kick` authentications, for the rate-limited warning.
    pub(crate) admin_failures: FailureLog,
    /// WebSocket connections open now (the `--max-connections` cap).
    pub(crate) connections: Arc<AtomicUsize>,
    /// WebSocket tasks, awaited at shutdown.
    pub(crate) tracker: TaskTracker,
    /// WebSockets and upgrade rates per address (`--max-connections-per-ip`,
    /// `--connect-rate-per-ip`).
    pub(crate) per_ip: Arc<Mutex<PerIp>>,
    /// The message store's figures; `None` without a store (`--in-memory`).
    pub(crate) store: Option<crate::keeping::StoreFigures>,
    /// The broker task's figures (its subscription up, its publishes); `None` without a broker.
    pub(crate) broker: Option<Arc<crate::broker::stats::BrokerStats>>,
}

/// Answers one request from `peer` (the TCP peer's address, for the per-address limits).
pub(crate) async fn route(
    req: Request<Incoming>,
    peer: IpAddr,
    state: Arc<AppState>,
) -> Result<Response<Body>, Infallible> {
    let mut response = dispatch(req, peer, state).await;
    security_headers::add(response.headers_mut());
    Ok(response)
}

/// The bytes of a request's head as it came: request line and header lines.
fn head_bytes<B>(req: &Request<B>) -> usize {
    let line =
        req.method().as_str().len() + req.uri().to_string().len() + " HTTP/1.1\r\n".len() + 1;
    let fields = req.headers().iter();
    line + fields
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + 2
}

/// `--max-header-bytes`, applied here rather than by hyper (whose own limit, eight times larger,
/// only bounds what a connection may buffer), so that a WebSocket upgrade whose `Origin` is
/// refused gets its `403` whatever the size: a 100,000-byte `Origin` is a refused origin first.
fn head_too_large(req: &Request<Incoming>, state: &AppState) -> Option<Response<Body>> {
    let (size, max) = (head_bytes(req), state.settings.max_header_bytes);
    let refused_origin = req.uri().path() == "/ws" && state.origins.check(req.headers()).is_err();
    if size <= max || refused_origin {
        return None;
    }
    let body =
        format!("request headers too large: {size} bytes, at most {max} (--max-header-bytes)\n");
    let mut response = text(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, body);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

async fn dispatch(req: Request<Incoming>, peer: IpAddr, state: Arc<AppState>) -> Response<Body> {
    if let Some(refusal) = head_too_large(&req, &state) {
        state.metrics.refuse("header_size");
        return refusal;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ws") => upgrade(req, peer, &state),
        (&Method::GET, "/status") => status(&state),
        (&Method::GET, "/metrics") => {
            if let Some(store) = &state.store {
                state.metrics.observe_store(store);
            }
            if let Some(broker) = &state.broker {
                state.metrics.observe_broker(&broker.read());
            }
            respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                state.metrics.encode(),
            )
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readyz(&state),
        (&Method::GET | &Method::HEAD, "/config.json") => {
            let body = crate::client_config::body(&state.settings);
            let mut response = respond(StatusCode::OK, "application/json", body);
            // Revalidated on every load: after a restart with other flags the next page load sees them.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        (&Method::POST, "/admin/kick") => kick(&req, &state).await,
        (_, "/ws" | "/status" | "/metrics" | "/healthz" | "/readyz" | "/admin/kick") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        (&Method::GET | &Method::HEAD, path) => match state.statics.get(path).await {
            Some((body, content_type)) => {
                let mut response = respond(StatusCode::OK, content_type, body);
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                response
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn refuse(
    state: &AppState,
    status: StatusCode,
    reason: &'static str,
    body: String,
) -> Response<Body> {
    state.metrics.refuse(reason);
    tracing::warn!(status = status.as_u16(), reason, detail = %body.trim_end(), "refused a WebSocket handshake");
    text(status, body)
}

/// Decrements the open-connection count when the connection's task ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn upgrade(mut req: Request<Incoming>, peer: IpAddr, state: &Arc<AppState>) -> Response<Body> {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return refuse(state, StatusCode::BAD_REQUEST, "not_upgrade", "bad handshake: /ws expects a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)\n".into());
    }
    if let Err(why) = state.origins.check(req.headers()) {
        let header = |name| {
            req.headers()
                .get(name)
                .map_or(&b""[..], HeaderValue::as_bytes)
        };
        let body = format!(
            "origin {} is not allowed to open a WebSocket here (host {}): {}; see --public-url and --allowed-origin\n",
            clip(header(header::ORIGIN)),
            clip(header(header::HOST)),
            why.explain()
        );
        return refuse(state, StatusCode::FORBIDDEN, "origin", body);
    }
    let join = match join_request(req.uri().query()) {
        Ok(join) => join,
        Err(why) => {
            return refuse(
                state,
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("bad handshake: {why}\n"),
            )
        }
    };
    // Before the global cap, so one address cannot take all of it.
    let ip_slot = match IpSlot::admit(&state.per_ip, peer) {
        Ok(slot) => slot,
        Err(Refusal::TooMany { max }) => {
            let body = format!("too many connections from your address ({max} open), try again later; see --max-connections-per-ip\n");
            return refuse(state, StatusCode::SERVICE_UNAVAILABLE, "per_ip", body);
        }
        Err(Refusal::TooFast { per_minute }) => {
            let body = format!("too many new connections from your address (at most {per_minute} a minute), try again later; see --connect-rate-per-ip\n");
            return refuse(state, StatusCode::SERVICE_UNAVAILABLE, "per_ip_rate", body);
        }
    };
    let max = state.settings.max_connections;
    if state.connections.fetch_add(1, Ordering::Relaxed) >= max {
        state.connections.fetch_sub(1, Ordering::Relaxed);
        return refuse(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            "capacity",
            format!("server at capacity ({max} connections), try again later\n"),
        );
    }
    let slot = Slot(state.connections.clone());
    let (response, upgraded) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(e) => {
            return refuse(
                state,
                StatusCode::BAD_REQUEST,
                "bad_handshake",
                format!("bad handshake: {e}\n"),
            )
        }
    };
    state.metrics.upgrades.inc();
    let hub = state.hub.clone();
    let limits = ConnLimits::new(&state.settings);
    let start = Box::new(ChatStart {
        join,
        from: Some(peer),
        hub,
        limits,
        already: Bytes::new(),
    });
    // The upgrade completes only after this response is written: never await it here.
    state
        .tracker
        .spawn(connection_task(upgraded, start, (slot, ip_slot)));
    response.map(|_| Full::new(Bytes::new()))
}

/// A WebSocket connection's task: the upgrade, then the chat. `held` (its places in the
/// connection counts) is dropped when the connection ends. An idle connection is mostly this
/// future, so what it keeps for its whole life is kept small (`the_connection_task_stays_small`).
async fn connection_task(
    upgraded: UpgradeFut,
    mut start: Box<ChatStart>,
    held: (Slot, Option<IpSlot>),
) {
    let ws = match upgraded.await {
        Ok(ws) => ws,
        Err(e) => return tracing::info!(error = %e, "WebSocket upgrade did not complete"),
    };
    // On TCP the connection takes the stream's own halves (`serve_chat_tcp`); any other
    // transport (a simulation's) goes through hyper's upgraded IO. The HTTP layer's write
    // deadline is disarmed by now: the connection's writer has its own.
    // The serving future is chosen before it is awaited: awaited inside the match, it would
    // keep the downcast's result beside it for the connection's whole life.
    let serving = match ws.into_inner().into_inner().downcast::<Served>() {
        Ok(parts) => {
            start.already = parts.read_buf;
            Either::Left(serve_chat_tcp(parts.io.into_inner().into_inner(), start))
        }
        Err(upgraded) => Either::Right(serve_chat(TokioIo::new(upgraded), start)),
    };
    serving.await;
    drop(held);
}

/// The IO hyper serves a TCP connection over (`server::serve_http`).
type Served = TokioIo<WriteDeadline<TcpStream>>;

/// `/ws?nick=&room=&since=&epoch=`: the initial join.
fn join_request(query: Option<&str>) -> Result<JoinRequest, String> {
    let mut join = JoinRequest::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match &*key {
            "nick" => join.nick = Some(value),
            "room" => join.room = Some(value),
            "epoch" => join.epoch = Some(value),
            "since" => {
                join.since = Some(value.parse().map_err(|_| {
                    format!("since must be a non-negative integer, not {}", clip(&value))
                })?)
            }
            _ => {}
        }
    }
    Ok(join)
}

/// Readiness, unlike `/healthz` (liveness): `503` while the store cannot write, since new
/// messages are refused meanwhile; a load balancer sends people elsewhere until it can.
fn readyz(state: &AppState) -> Response<Body> {
    if (state.broker.as_ref()).is_some_and(|broker| !broker.subscribed()) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the broker (Redis) cannot be reached (new messages are refused with unavailable)\n",
        );
    }
    let writable = (state.store.as_ref()).is_none_or(|store| store.healthy.load(Ordering::Relaxed));
    if writable {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the message store cannot write (new messages are refused with unavailable)\n",
        )
    }
}

/// The store's part of `/status`: `null` without one.
fn store_status(state: &AppState) -> serde_json::Value {
    use crate::store::StoreStats as S;
    let Some(store) = &state.store else {
        return serde_json::Value::Null;
    };
    let commits = S::get(&store.commits);
    let total = S::get(&store.commit_micros_total);
    serde_json::json!({
        "healthy": store.healthy.load(Ordering::Relaxed),
        "commits": commits,
        "messages_written": S::get(&store.messages_written),
        "commit_last_ms": S::get(&store.commit_micros_last) as f64 / 1000.0,
        "commit_mean_ms": if commits == 0 { 0.0 } else { total as f64 / commits as f64 / 1000.0 },
        "batch_last": S::get(&store.batch_last),
        "write_errors": S::get(&store.write_errors),
        "bytes_on_disk": S::get(&store.bytes_on_disk),
    })
}

fn status(state: &AppState) -> Response<Body> {
    let stats = *state.stats.borrow();
    let body = serde_json::json!({
        "store": store_status(state),
        "broker": state.broker.as_ref().map(|broker| broker.read()),
        "uncommitted": stats.uncommitted,
        "connected_users": stats.clients,
        "timestamp": humantime::format_rfc3339_millis(state.clock.now().wall).to_string(),
        "rooms": stats.rooms,
        "messages_total": stats.messages_total,
        "evictions_total": stats.evictions_total,
        "connections": state.connections.load(Ordering::Relaxed),
        "uptime_seconds": state.clock.uptime_seconds(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    respond(StatusCode::OK, "application/json", body.to_string())
}

async fn kick(req: &Request<Incoming>, state: &AppState) -> Response<Body> {
    let Some(token) = &state.settings.admin_token else {
        return text(
            StatusCode::NOT_FOUND,
            "not found: start the server with --admin-token to enable /admin/kick\n",
        );
    };
    if let Err(denied) = admin::authorize(req.headers().get(header::AUTHORIZATION), token) {
        state.metrics.admin_auth_failures.inc();
        let now = tokio::time::Instant::now().into_std();
        if let Some(suppressed) = state.admin_failures.record(now) {
            // Never the presented token: a near miss is most of the real one.
            tracing::warn!(
                reason = denied.as_str(),
                suppressed,
                "refused an /admin/kick request (suppressed: failures not logged since the last warning)"
            );
        }
        return match denied {
            admin::Denied::Missing => text(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token>\n",
            ),
            admin::Denied::Wrong => text(StatusCode::FORBIDDEN, "wrong admin token\n"),
        };
    }
    let mut room = None;
    let mut nick = None;
    for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        match &*key {
            "room" => room = Some(value.into_owned()),
            "nick" => nick = Some(value.into_owned()),
            _ => {}
        }
    }
    let (Some(room), Some(nick)) = (room, nick) else {
        return text(
            StatusCode::BAD_REQUEST,
            "usage: POST /admin/kick?room=ROOM&nick=NICK\n",
        );
    };
    let (shown_room, shown_nick) = (clip(&room), clip(&nick));
    match state.hub.kick(room, nick).await {
        Some(Kicked::Here(client)) => {
            tracing::info!(client = %client, "kicked by an operator");
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Some(Kicked::Sent { node }) => {
            tracing::info!(%node, "an operator's kick sent to the node holding the name");
            text(
                StatusCode::ACCEPTED,
                format!("{shown_nick} in room {shown_room} is on another node; the kick was sent to it\n"),
            )
        }
        Some(Kicked::NoSuchUser) => text(
            StatusCode::NOT_FOUND,
            format!("no user {shown_nick} in room {shown_room}\n"),
        ),
        Some(Kicked::Unavailable) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{shown_nick} is not on this node, and the cluster cannot be asked now\n"),
        ),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "server shutting down\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::join_request;

    /// An idle connection is mostly its task's future (BENCHMARKS.md, scenario 6: RSS per
    /// connection). This is the very future the server spawns, over the stream it serves, so a
    /// change that keeps something twice for a connection's whole life (an argument beside its
    /// moved copy, a message beside the channel's) shows here. Such copies had taken it to 2.5 KiB
    /// (1.45 KiB without them).
    #[test]
    fn the_connection_task_stays_small() {
        use super::*;

        let mut req = Request::builder()
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .body(())
            .expect("a request");
        let (_response, upgraded) =
            fastwebsockets::upgrade::upgrade(&mut req).expect("a valid handshake");
        let (hub, _inbox) = crate::hub::Hub::channel(1);
        let start = Box::new(ChatStart {
            join: JoinRequest::default(),
            from: None,
            hub,
            limits: ConnLimits::default(),
            already: Bytes::new(),
        });
        let slot = Slot(Arc::new(AtomicUsize::new(1)));
        let task = connection_task(upgraded, start, (slot, None));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1536, "the connection task's future is {size} bytes");
    }

    #[test]
    fn query_parameters_become_the_initial_join() {
        let join =
            join_request(Some("nick=ann%20b&room=rust&since=41&epoch=e-1&x=y")).expect("valid");
        assert_eq!(join.nick.as_deref(), Some("ann b"));
        assert_eq!(join.room.as_deref(), Some("rust"));
        assert_eq!(join.since, Some(41));
        assert_eq!(join.epoch.as_deref(), Some("e-1"));
        assert!(join_request(Some("since=-1")).is_err());
        assert_eq!(join_request(None), Ok(Default::default()));
    }
}
