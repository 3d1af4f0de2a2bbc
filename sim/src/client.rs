//! A simulated chat client: a real WebSocket client (fastwebsockets client role, so its frames are
//! masked) over turmoil's TCP. It records everything it sees in the run's [`Trace`] and keeps a
//! live [`View`] of its room for the scenario script driving it.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chat_engine::protocol::Command;
use chat_engine::{JoinRequest, ServerMessage};
use fastwebsockets::{Frame, OpCode, Payload, WebSocketRead, WebSocketWrite};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::trace::{self, End, Received, Role, Seen, Session, Snapshot, Trace};

/// The server's host name in every simulation.
pub const SERVER: &str = "server";
/// The port the server listens on.
pub const PORT: u16 = 8080;
/// How long a WebSocket handshake may take before the attempt counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often `wait_until` looks at the view again.
const POLL: Duration = Duration::from_millis(5);

type Io = TokioIo<Upgraded>;

/// What a client currently believes about its connection and room.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The connection is up (the reader has not seen the stream end).
    pub open: bool,
    pub room: Option<String>,
    /// The room epoch from the last `welcome` (what `since` recovery is keyed on).
    pub room_epoch: Option<String>,
    pub nick: Option<String>,
    /// Presence: nicknames in the room, from `welcome.users` and `users` pages plus
    /// `join`/`leave`/`nick`/`presence`.
    pub users: BTreeSet<String>,
    /// Members of the room, from `welcome`/`users`/`presence` counts plus `join`/`leave`.
    pub user_count: usize,
    /// `users` holds every member: the welcome listed them all, or the list was paged since, and
    /// no `presence` frame has left names out since.
    pub users_complete: bool,
    /// A `presence` frame left names out since the list was last complete: `users` may hold
    /// names of people who left.
    pub users_stale: bool,
    /// While `page_all_users` runs: what frames other than the pages changed meanwhile.
    pub paging: Option<Paging>,
    /// `who` pages that arrived, the last one's names and its `next`.
    pub pages: usize,
    pub last_page: Vec<String>,
    pub next_page: Option<String>,
    /// The last `seq` seen in the current room.
    pub last_seq: Option<u64>,
    /// The close code the server sent, if any.
    pub close_code: Option<u16>,
    /// Last time anything (a frame or a ping) arrived.
    pub last_heard: Duration,
    /// The last `welcome` received.
    pub welcome: Option<ServerMessage>,
    /// Error codes received, in order.
    pub errors: Vec<String>,
}

/// Changes announced while a client pages the member list: a page covers the names up to its
/// cursor as they were when the server wrote it, so a name that arrives behind the cursor is known
/// only from the announcement, and a truncated announcement leaves the paged list unsure again.
#[derive(Clone, Debug, Default)]
pub struct Paging {
    pub arrived: BTreeSet<String>,
    pub truncated: bool,
}

impl View {
    fn arrive(&mut self, nick: &str) {
        if let Some(p) = &mut self.paging {
            p.arrived.insert(nick.to_owned());
        }
    }

    fn depart(&mut self, nick: &str) {
        if let Some(p) = &mut self.paging {
            p.arrived.remove(nick);
        }
    }

    fn apply(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::Welcome {
                nick,
                room,
                users,
                user_count,
                seq,
                epoch,
                ..
            } => {
                self.room = Some(room.clone());
                self.room_epoch = Some(epoch.clone());
                self.nick = Some(nick.clone());
                self.users = users.iter().cloned().collect();
                self.user_count = *user_count;
                self.users_complete = users.len() == *user_count;
                self.users_stale = false;
                self.paging = None;
                self.last_seq = Some(*seq);
                self.welcome = Some(message.clone());
            }
            ServerMessage::Message(m) if Some(&m.room) == self.room.as_ref() => {
                self.last_seq = Some(m.seq);
            }
            ServerMessage::Join { room, nick, .. } if Some(room) == self.room.as_ref() => {
                self.arrive(nick);
                self.users.insert(nick.clone());
                self.user_count += 1;
            }
            ServerMessage::Leave { room, nick, .. } if Some(room) == self.room.as_ref() => {
                self.depart(nick);
                self.users.remove(nick);
                self.user_count = self.user_count.saturating_sub(1);
            }
            ServerMessage::Presence {
                room,
                user_count,
                joined,
                left,
                renamed,
                joined_more,
                left_more,
                renamed_more,
            } if Some(room) == self.room.as_ref() => {
                // One step: every name that went out, then every name that came in.
                for gone in left.iter().chain(renamed.iter().map(|r| &r.old)) {
                    self.depart(gone);
                    self.users.remove(gone);
                }
                for came in joined.iter().chain(renamed.iter().map(|r| &r.nick)) {
                    self.arrive(came);
                    self.users.insert(came.clone());
                }
                self.user_count = *user_count;
                if joined_more + left_more + renamed_more > 0 {
                    self.users_complete = false;
                    self.users_stale = true;
                    if let Some(p) = &mut self.paging {
                        p.truncated = true;
                    }
                }
            }
            ServerMessage::Users {
                room,
                users,
                user_count,
                next,
            } if Some(room) == self.room.as_ref() => {
                self.users.extend(users.iter().cloned());
                self.user_count = *user_count;
                self.pages += 1;
                self.last_page = users.clone();
                self.next_page = next.clone();
            }
            ServerMessage::Nick {
                room, old, nick, ..
            } if Some(room) == self.room.as_ref() => {
                self.depart(old);
                self.arrive(nick);
                self.users.remove(old);
                self.users.insert(nick.clone());
                if self.nick.as_ref() == Some(old) {
                    self.nick = Some(nick.clone());
                }
            }
            ServerMessage::Error { code, .. } => self.errors.push(code.clone()),
            _ => {}
        }
    }
}

/// A frame for the writer task to send.
struct Out {
    opcode: OpCode,
    payload: Vec<u8>,
}

struct Conn {
    out: mpsc::UnboundedSender<Out>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    session: usize,
}

/// One simulated user; create it inside its `sim.client` future.
pub struct Client {
    name: String,
    trace: Trace,
    rng: SmallRng,
    view: Arc<Mutex<View>>,
    conn: Option<Conn>,
    sent: usize,
    /// The host it connects to ([`SERVER`] unless a cluster scenario picks a node).
    server: String,
}

/// Hyper's executor for the client connection task.
#[derive(Clone, Copy)]
struct Spawn;

impl<F> hyper::rt::Executor<F> for Spawn
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(future);
    }
}

/// Percent-encodes a query value (everything but ASCII letters and digits).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(join: &JoinRequest) -> String {
    let mut parts = Vec::new();
    if let Some(nick) = &join.nick {
        parts.push(format!("nick={}", encode(nick)));
    }
    if let Some(room) = &join.room {
        parts.push(format!("room={}", encode(room)));
    }
    if let Some(since) = join.since {
        parts.push(format!("since={since}"));
    }
    if let Some(epoch) = &join.epoch {
        parts.push(format!("epoch={}", encode(epoch)));
    }
    parts.join("&")
}

async fn open(server: &str, join: &JoinRequest) -> Result<fastwebsockets::WebSocket<Io>, String> {
    let stream = turmoil::net::TcpStream::connect((server, PORT))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = hyper::Request::builder()
        .method("GET")
        .uri(format!("http://{server}:{PORT}/ws?{}", query(join)))
        .header("Host", format!("{server}:{PORT}"))
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::CONNECTION, "upgrade")
        // A fixed key keeps the run byte-for-byte the same (the key is no secret).
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let (ws, _) = fastwebsockets::handshake::client(&Spawn, request, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

impl Client {
    /// A new client called `name` (also its turmoil host name), recording into `trace`.
    pub fn new(trace: &Trace, name: &str, seed: u64) -> Self {
        trace.lock().clients.entry(name.to_owned()).or_default();
        Self {
            name: name.to_owned(),
            trace: trace.clone(),
            rng: SmallRng::seed_from_u64(crate::mix(seed, name)),
            view: Arc::default(),
            conn: None,
            sent: 0,
            server: SERVER.to_owned(),
        }
    }

    /// Makes later connections go to host `server` (a node of a cluster) instead of [`SERVER`].
    pub fn set_server(&mut self, server: &str) {
        self.server = server.to_owned();
    }

    /// The host this client connects to.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The trace this client records into.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// This client's own random source, derived from the run's seed and its name.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// Declares how this client behaves (what the checker expects of it).
    pub fn set_role(&self, role: Role) {
        self.log(|log| log.role = role);
    }

    fn log(&self, f: impl FnOnce(&mut trace::ClientLog)) {
        let mut record = self.trace.lock();
        f(record.clients.entry(self.name.clone()).or_default());
    }

    fn view_mut(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current view.
    pub fn view(&self) -> View {
        self.view_mut().clone()
    }

    pub fn is_open(&self) -> bool {
        self.view_mut().open
    }

    /// A join that asks to resume the current (or last) room where this client left off.
    pub fn resume_request(&self) -> JoinRequest {
        let view = self.view_mut();
        JoinRequest {
            room: view.room.clone(),
            nick: view.nick.clone(),
            since: view.last_seq,
            epoch: view.room_epoch.clone(),
        }
    }

    /// Opens a new connection (dropping any current one) and waits for its first frame; `false`
    /// when the handshake failed or nothing arrived in time.
    pub async fn connect(&mut self, join: JoinRequest) -> bool {
        self.drop_connection();
        let session = {
            let mut record = self.trace.lock();
            let log = record.clients.entry(self.name.clone()).or_default();
            log.sessions.push(Session {
                opened_at: trace::now(),
                request: join.clone(),
                seen: Vec::new(),
                we_closed_at: None,
                end: None,
            });
            log.sessions.len() - 1
        };
        let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(&self.server, &join)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(why)) => return self.refused(session, why),
            Err(_) => return self.refused(session, "handshake timed out".to_owned()),
        };
        *self.view_mut() = View {
            open: true,
            last_heard: trace::now(),
            ..View::default()
        };
        let (read, write) = ws.split(tokio::io::split);
        let (out, out_rx) = mpsc::unbounded_channel();
        let writer = tokio::task::spawn_local(write_loop(write, out_rx));
        let reader = tokio::task::spawn_local(read_loop(
            read,
            out.clone(),
            Recorder {
                trace: self.trace.clone(),
                name: self.name.clone(),
                session,
                view: self.view.clone(),
            },
        ));
        self.conn = Some(Conn {
            out,
            reader,
            writer,
            session,
        });
        self.wait_until(
            |v| v.welcome.is_some() || !v.errors.is_empty() || !v.open,
            HANDSHAKE_TIMEOUT,
        )
        .await
    }

    /// A failed attempt; the view keeps the room, epoch and `seq` to resume from next time.
    fn refused(&mut self, session: usize, why: String) -> bool {
        self.log(|log| log.sessions[session].end = Some((trace::now(), End::Refused(why))));
        self.view_mut().open = false;
        false
    }

    /// Sends one command; returns whether the connection took it. Messages handed to an open
    /// connection are recorded as sent.
    pub fn send(&mut self, command: &Command) -> bool {
        let taken = self.send_raw(OpCode::Text, command.encode().into_bytes());
        if let (true, Command::Message { text }) = (taken, command) {
            let text = text.clone();
            self.log(|log| log.sent.push((trace::now(), text)));
        }
        taken
    }

    fn send_raw(&self, opcode: OpCode, payload: Vec<u8>) -> bool {
        match &self.conn {
            Some(conn) if self.is_open() => conn.out.send(Out { opcode, payload }).is_ok(),
            _ => false,
        }
    }

    /// Posts a chat message with a text unique in the run; returns the text.
    pub fn say(&mut self) -> String {
        self.sent += 1;
        let text = format!("{} #{}", self.name, self.sent);
        self.send(&Command::Message { text: text.clone() });
        text
    }

    /// Says something after each random pause drawn from `pause_ms` (milliseconds, from this
    /// client's seeded RNG) until the simulated clock reaches `until`.
    pub async fn chat_until(&mut self, until: Duration, pause_ms: std::ops::Range<u64>) {
        while crate::trace::now() < until {
            let pause = rand::Rng::random_range(self.rng(), pause_ms.clone());
            tokio::time::sleep(Duration::from_millis(pause)).await;
            self.say();
        }
    }

    /// Joins (or switches to) `room`, keeping the current nickname.
    pub fn join(&mut self, room: &str) {
        self.send(&Command::Join(JoinRequest {
            room: Some(room.to_owned()),
            ..JoinRequest::default()
        }));
    }

    /// Asks to be called `nick` in the current room.
    pub fn rename(&mut self, nick: &str) {
        self.send(&Command::Nick {
            nick: nick.to_owned(),
        });
    }

    /// Connects to `room` as `nick`, failing the scenario if it cannot.
    pub async fn must_join(&mut self, room: &str, nick: &str) {
        assert!(
            self.connect(crate::join(room, nick)).await,
            "{nick} could not connect"
        );
    }

    /// The end of a scenario: records its final view at `snapshot_at` (once the run is quiet),
    /// then closes at `close_at`.
    pub async fn snapshot_then_close(&mut self, snapshot_at: Duration, close_at: Duration) {
        crate::sleep_until(snapshot_at).await;
        self.snapshot();
        crate::sleep_until(close_at).await;
        self.close().await;
    }

    /// Closes with 1000 and waits (briefly) for the server to finish the close handshake.
    pub async fn close(&mut self) {
        if self.conn.is_some() && self.is_open() {
            self.log_session(|s| s.we_closed_at = Some(trace::now()));
            self.send_raw(OpCode::Close, 1000u16.to_be_bytes().to_vec());
            self.wait_until(|v| !v.open, Duration::from_secs(3)).await;
        }
        self.drop_connection();
    }

    fn log_session(&self, f: impl FnOnce(&mut Session)) {
        if let Some(conn) = &self.conn {
            let session = conn.session;
            self.log(|log| f(&mut log.sessions[session]));
        }
    }

    /// Drops the connection without a close handshake (as when a laptop lid closes).
    pub fn drop_connection(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.reader.abort();
            conn.writer.abort();
            self.log(|log| {
                let session = &mut log.sessions[conn.session];
                session.end.get_or_insert((trace::now(), End::Dropped));
            });
            self.view_mut().open = false;
        }
    }

    /// Stops reading: holds every segment between the server and this client (a slow reader).
    pub fn stop_reading(&self) {
        turmoil::hold(self.server.as_str(), self.name.as_str());
        self.log(|log| log.stopped_reading = Some(trace::now()));
    }

    /// Reads again: delivers what was held.
    pub fn resume_reading(&self) {
        turmoil::release(self.server.as_str(), self.name.as_str());
    }

    /// Pages the whole member list with `who` and makes it the view's list (what a client does
    /// when it wants every name, or after a `presence` frame left names out). Returns whether
    /// every page arrived in time.
    pub async fn page_all_users(&mut self, timeout: Duration) -> bool {
        let mut names = BTreeSet::new();
        let mut after: Option<String> = None;
        self.view_mut().paging = Some(Paging::default());
        loop {
            let pages = self.view().pages;
            let sent = self.send(&Command::Who {
                after: after.clone(),
            });
            if !sent || !self.wait_until(|v| v.pages > pages, timeout).await {
                self.view_mut().paging = None;
                return false;
            }
            let view = self.view();
            names.extend(view.last_page.iter().cloned());
            match view.next_page {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut view = self.view.lock().expect("view lock");
        let Some(paging) = view.paging.take() else {
            // A welcome arrived meanwhile: the pages were of an earlier membership.
            return false;
        };
        // Names from before the paging that neither the pages nor an announcement since
        // confirmed are gone.
        view.users
            .retain(|n| names.contains(n) || paging.arrived.contains(n));
        view.users_complete = !paging.truncated;
        view.users_stale = paging.truncated;
        true
    }

    /// Records this client's view of its room as the final one (call once the run is quiet).
    pub fn snapshot(&self) {
        if let Some(snapshot) = self.view_now() {
            self.log(|log| log.snapshot = Some(snapshot));
        }
    }

    /// Records this client's view of its room at a quiet moment of the run; every client of the
    /// scenario must take it at the same instant.
    pub fn checkpoint(&self) {
        if let Some(snapshot) = self.view_now() {
            self.log(|log| log.checkpoints.push(snapshot));
        }
    }

    fn view_now(&self) -> Option<Snapshot> {
        let view = self.view();
        match (view.open, view.room, view.nick) {
            (true, Some(room), Some(nick)) => Some(Snapshot {
                at: trace::now(),
                room,
                nick,
                users: view.users,
                user_count: view.user_count,
                users_complete: view.users_complete,
                users_stale: view.users_stale,
            }),
            _ => None,
        }
    }

    /// Waits until `done` holds for the view or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, done: impl Fn(&View) -> bool, timeout: Duration) -> bool {
        let deadline = trace::now() + timeout;
        loop {
            if done(&self.view_mut()) {
                return true;
            }
            if trace::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Sleeps until simulated time `at` (since the run started).
pub async fn sleep_until(at: Duration) {
    let now = trace::now();
    if at > now {
        tokio::time::sleep(at - now).await;
    }
}

/// Where the reader writes what it sees.
struct Recorder {
    trace: Trace,
    name: String,
    session: usize,
    view: Arc<Mutex<View>>,
}

impl Recorder {
    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen(&self, what: Received) {
        let at = trace::now();
        {
            let mut view = self.view();
            view.last_heard = at;
            match &what {
                Received::Frame(message) => view.apply(message),
                Received::Close(code) => view.close_code = *code,
                Received::Garbage(_) => {}
            }
        }
        let mut record = self.trace.lock();
        if let Some(log) = record.clients.get_mut(&self.name) {
            log.sessions[self.session].seen.push(Seen { at, what });
        }
    }

    fn ended(&self) {
        self.view().open = false;
        let mut record = self.trace.lock();
        if let Some(log) = record.clients.get_mut(&self.name) {
            let session = &mut log.sessions[self.session];
            session.end.get_or_insert((trace::now(), End::Ended));
        }
    }
}

async fn read_loop(
    mut read: WebSocketRead<ReadHalf<Io>>,
    out: mpsc::UnboundedSender<Out>,
    recorder: Recorder,
) {
    // Pongs and the close echo come out here; the writer task sends them.
    let mut obligations = |frame: Frame<'_>| {
        recorder.view().last_heard = trace::now();
        let _ = out.send(Out {
            opcode: frame.opcode,
            payload: frame.payload.to_vec(),
        });
        std::future::ready(Ok::<(), Infallible>(()))
    };
    while let Ok(frame) = read.read_frame(&mut obligations).await {
        let what = match frame.opcode {
            OpCode::Text => match serde_json::from_slice::<ServerMessage>(&frame.payload) {
                Ok(message) => Received::Frame(message),
                Err(_) => Received::Garbage(String::from_utf8_lossy(&frame.payload).into_owned()),
            },
            OpCode::Close => Received::Close(
                (frame.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]])),
            ),
            OpCode::Pong => continue,
            other => Received::Garbage(format!("{other:?} frame")),
        };
        recorder.seen(what);
    }
    recorder.ended();
}

async fn write_loop(
    mut write: WebSocketWrite<WriteHalf<Io>>,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    while let Some(Out { opcode, payload }) = rx.recv().await {
        let closing = opcode == OpCode::Close;
        let frame = Frame::new(true, opcode, None, Payload::Owned(payload));
        if write.write_frame(frame).await.is_err() || closing {
            break;
        }
    }
    // Keep the write half (and so the connection) until the reader is done with it.
    std::future::pending::<()>().await;
}
