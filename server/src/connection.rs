//! One WebSocket connection after the upgrade: a reader and a writer, run side by side in one
//! task and joined by the connection's link. `serve_chat` hands messages to the hub;
//! `serve_echo` sends them back (the Autobahn target).
//!
//! What a chat connection's reader read and its writer wrote reaches the hub through one
//! `HubReporter`, and its end through one `Disconnect`, sent when the reader ends: a writer
//! that fails stops the reader rather than telling the hub itself.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_engine::{ClientId, JoinRequest};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::SemaphorePermit;

use crate::hub::{HubHandle, ToHub};
use crate::link::{Link, LinkLimits, ReadControl};
use crate::settings::ConnLimits;
use crate::sink::Sink;
use crate::writer::write_loop;
use crate::ws_read::{Incoming, MessageReader, ReadEnd, ReadLimits};
use crate::ws_write::{
    close_frame_bytes, Tally, WriterCmd, CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_NO_STATUS,
    CLOSE_TRY_AGAIN, CLOSE_UNSUPPORTED,
};

/// After we send a close, how long we keep reading for the peer's close before hanging up.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// What a chat connection starts from. `from` is the peer's address: a client reconnecting
/// from it does not get a fresh rate limit.
///
/// Boxed into `serve_chat`: an async fn keeps its arguments in its future for its whole life,
/// and so does the task that spawns it, so these would be held twice per connection for as
/// long as it lasts. The box is emptied and freed as the connection starts.
pub(crate) struct ChatStart {
    pub(crate) join: JoinRequest,
    pub(crate) from: Option<IpAddr>,
    pub(crate) hub: HubHandle,
    pub(crate) limits: ConnLimits,
    /// What the HTTP layer read of the connection past the upgrade request: read first.
    pub(crate) already: Bytes,
}

/// Serves one chat connection over any byte stream that completed the WebSocket handshake.
pub(crate) fn serve_chat<S>(io: S, start: Box<ChatStart>) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    serve_halves(read, Sink::new(write), start)
}

/// The same over a TCP stream, whose own halves it takes: direct writes are then plain
/// non-blocking sends (`Sink::tcp`).
pub(crate) fn serve_chat_tcp(
    stream: TcpStream,
    start: Box<ChatStart>,
) -> impl Future<Output = ()> + Send {
    let (read, write) = stream.into_split();
    serve_halves(read, Sink::tcp(write), start)
}

async fn serve_halves<R>(read: R, sink: Sink, start: Box<ChatStart>)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    // Moved into the block, so the box is freed here: moved out of where it is, it would be
    // freed only when the connection ends.
    let ChatStart {
        join,
        from,
        hub,
        limits,
        already,
    } = {
        let start = start;
        *start
    };
    let link = Arc::new(Link::new(sink, LinkLimits::from(&limits)));
    let client = match hub.connect(join, from, link.clone()).await {
        Some(Ok(client)) => client,
        refused => {
            let (code, reason) = match refused {
                Some(Err(_)) => (CLOSE_TRY_AGAIN, "server full, try again later"),
                _ => (CLOSE_GOING_AWAY, "server shutting down"),
            };
            let _ = tokio::time::timeout(
                limits.write_timeout,
                link.write_all(&close_frame_bytes(code, reason)),
            )
            .await;
            return;
        }
    };
    let to_hub = HubReporter { hub, client };
    let mut reader = MessageReader::with_buffered(read, ReadLimits::from(&limits), &already);
    drop(already);
    // Written out here and in `serve_echo` rather than shared: a helper taking the reading
    // future as an argument stores it twice, and the connection's task grew from 1.7 to 3.0 KiB
    // (scenario 4 went from 3.5 to 4.8 KiB per connection).
    let reading = async {
        let end = read_loop(&mut reader, &link, &to_hub).await;
        // The one Disconnect, however the connection ended: the reader ends when the peer
        // closes or vanishes, and when the link stops it (the hub closed the client, or the
        // writer failed).
        to_hub.disconnected().await;
        // The hub closes the link when it hears of the disconnect; after shutdown nobody would.
        link.close();
        end
    };
    let writing = async {
        let flushed = |tally| to_hub.flushed(tally);
        if write_loop(&link, limits.write_timeout, flushed)
            .await
            .is_err()
        {
            // Nothing can be written any more: stop the reader, whose end tells the hub.
            link.hang_up(None);
        }
    };
    // Flush everything (the close frame last) before lingering: the linger is bounded, and a
    // socket dropped with unread bytes resets, which could cost the peer its last frames.
    let (end, ()) = tokio::join!(reading, writing);
    if end == LoopEnd::Linger {
        linger(&mut reader).await;
    }
}

/// A chat connection's side of the hub's inbox: the one place where what its reader read and
/// what its writer wrote become hub messages.
struct HubReporter {
    hub: HubHandle,
    client: ClientId,
}

// Each returns the hub's send future itself: an `async fn` around it would hold its argument
// beside the message, which grows the connection's task (`the_connection_task_stays_small`).
impl HubReporter {
    fn frame(&self, text: String) -> impl Future<Output = ()> + '_ {
        let client = self.client;
        self.hub.send(ToHub::Frame { client, text })
    }

    /// A pong: the client is alive. Only a pong and a whole message count (the engine counts
    /// those itself): pings and fragments cost a client nothing to send without listening,
    /// so one that sends only those would otherwise never be idle.
    fn heard(&self) -> impl Future<Output = ()> + '_ {
        let client = self.client;
        self.hub.send(ToHub::Pong { client })
    }

    fn flushed(&self, tally: Tally) -> impl Future<Output = ()> + '_ {
        let client = self.client;
        self.hub.send(ToHub::Flushed { client, tally })
    }

    fn disconnected(&self) -> impl Future<Output = ()> + '_ {
        let client = self.client;
        self.hub.send(ToHub::Disconnect { client })
    }
}

/// The answer to a peer's close: its own code (1000 for an empty close).
fn close_echo(code: Option<u16>) -> WriterCmd {
    WriterCmd::Close {
        code: code.unwrap_or(CLOSE_NORMAL),
        reason: "",
    }
}

#[derive(Debug, PartialEq, Eq)]
enum LoopEnd {
    /// We (or the server) sent a close: read until the peer's close, briefly.
    Linger,
    /// The peer closed or vanished.
    Done,
}

async fn read_loop<R: AsyncRead + Unpin>(
    reader: &mut MessageReader<R>,
    link: &Link,
    to_hub: &HubReporter,
) -> LoopEnd {
    let client = to_hub.client;
    loop {
        // Flow control: while paused, leave the bytes in the socket so TCP pushes back.
        if link.wait_control(|c| c != ReadControl::Pause).await == ReadControl::Stop {
            return LoopEnd::Linger;
        }
        let (incoming, permit) = tokio::select! {
            biased;
            _ = link.wait_control(|c| c == ReadControl::Stop) => return LoopEnd::Linger,
            read = next_with_credit(reader, link) => read,
        };
        match incoming {
            Ok(Incoming::Text(text)) => {
                // The hub gives the permit back once the engine has taken the frame.
                permit.forget();
                to_hub.frame(text).await;
            }
            Ok(Incoming::Binary(_)) => {
                link.send(WriterCmd::Close {
                    code: CLOSE_UNSUPPORTED,
                    reason: "binary frames are not supported: this is a text protocol",
                });
                return LoopEnd::Linger;
            }
            // Not a sign of life (see `HubReporter::heard`).
            Ok(Incoming::Ping(payload)) => link.send(WriterCmd::Pong(payload.into())),
            Ok(Incoming::Pong) => to_hub.heard().await,
            Ok(Incoming::Close { code }) => {
                link.send(close_echo(code));
                tracing::info!(client = %client, code = code.unwrap_or(CLOSE_NO_STATUS), "client closed");
                return LoopEnd::Done;
            }
            Err(ReadEnd::Violation { code, reason }) => {
                tracing::info!(client = %client, code, reason, "closing a connection that broke the protocol");
                link.send(WriterCmd::Close { code, reason });
                return LoopEnd::Linger;
            }
            Err(ReadEnd::Gone) => {
                tracing::info!(client = %client, "connection lost");
                return LoopEnd::Done;
            }
        }
    }
}

/// The next message, read only once there is credit for it: a reader whose frames the engine is
/// not taking (its room is paused) leaves the rest in the socket, so TCP pushes back. A text's
/// bytes are charged once it is read (its length is not known before): until the engine has
/// taken enough of what came before, the reader keeps it and reads nothing more.
async fn next_with_credit<'l, R: AsyncRead + Unpin>(
    reader: &mut MessageReader<R>,
    link: &'l Link,
) -> (Result<Incoming, ReadEnd>, SemaphorePermit<'l>) {
    // Never closed: the semaphores live as long as the connection.
    let permit = (link.credit().acquire().await).expect("credit is never closed");
    let incoming = reader.next().await;
    if let Ok(Incoming::Text(text)) = &incoming {
        let bytes = link.charge(text.len());
        // Given back with the frame's, when the engine takes it (`Link::taken`).
        (link.byte_credit().acquire_many(bytes).await)
            .expect("credit is never closed")
            .forget();
    }
    (incoming, permit)
}

/// Reads and discards until the peer's close or end of stream, for at most `CLOSE_LINGER`.
async fn linger<R: AsyncRead + Unpin>(reader: &mut MessageReader<R>) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        // Any error ends it too: a reader that broke the protocol once cannot be trusted to
        // make progress, and an always-ready loop would never let the timeout fire.
        while !matches!(reader.next().await, Ok(Incoming::Close { .. }) | Err(_)) {}
    })
    .await;
}

/// Serves an echo connection with the same reader and writer: every message comes back as it
/// came. This is what the Autobahn|Testsuite runs against.
pub async fn serve_echo<S>(io: S, limits: ConnLimits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let link = Link::new(Sink::new(write), LinkLimits::from(&limits));
    let mut reader = MessageReader::new(read, ReadLimits::from(&limits));
    let reading = async {
        let end = echo_loop(&mut reader, &link).await;
        link.close();
        end
    };
    // Nobody keeps accounts of an echo connection; a failed write closes the link, and the echo
    // loop stops at its next message.
    let writing = async {
        let _ = write_loop(&link, limits.write_timeout, |_| async {}).await;
    };
    // As in `serve_chat`: the writer flushes everything before any linger.
    let (end, ()) = tokio::join!(reading, writing);
    if end == LoopEnd::Linger {
        linger(&mut reader).await;
    }
}

async fn echo_loop<R: AsyncRead + Unpin>(reader: &mut MessageReader<R>, link: &Link) -> LoopEnd {
    loop {
        let cmd = match reader.next().await {
            Ok(Incoming::Text(text)) => WriterCmd::Text(text.into()),
            Ok(Incoming::Binary(bytes)) => WriterCmd::Binary(bytes.into()),
            Ok(Incoming::Ping(payload)) => WriterCmd::Pong(payload.into()),
            Ok(Incoming::Pong) => continue,
            Ok(Incoming::Close { code }) => {
                link.send(close_echo(code));
                return LoopEnd::Done;
            }
            Err(ReadEnd::Violation { code, reason }) => {
                link.send(WriterCmd::Close { code, reason });
                return LoopEnd::Linger;
            }
            Err(ReadEnd::Gone) => return LoopEnd::Done,
        };
        // A writer that failed closed the link: nobody hears the echo any more.
        if link.is_closed() {
            return LoopEnd::Done;
        }
        link.send(cmd);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chat_engine::JoinRequest;

    use crate::hub::Hub;

    /// A connection's start as the server gives it, with the default join.
    fn start(hub: crate::hub::HubHandle, limits: super::ConnLimits) -> Box<super::ChatStart> {
        Box::new(super::ChatStart {
            join: JoinRequest::default(),
            from: None,
            hub,
            limits,
            already: bytes::Bytes::new(),
        })
    }

    /// A socket whose reads come from a pipe and whose writes all fail.
    struct WritesFail(tokio::io::DuplexStream);

    impl tokio::io::AsyncRead for WritesFail {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for WritesFail {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// The writer meets a failing socket while the reader still waits on a live one: the hub
    /// hears of it once. (The writer used to report the failure itself, and the reader's end
    /// then sent a second Disconnect, which the hub could only swallow as an unknown client.)
    #[tokio::test]
    async fn a_failed_write_tells_the_hub_of_the_disconnect_once() {
        use crate::hub::ToHub;
        use crate::ws_write::WriterCmd;

        let (hub, mut inbox) = Hub::channel(16);
        let (ours, peer) = tokio::io::duplex(64);
        let serving = tokio::spawn(super::serve_chat(
            WritesFail(ours),
            start(hub, super::ConnLimits::default()),
        ));
        // Play the hub: accept the client, then give its writer a frame to write.
        let mut engine =
            chat_engine::Engine::new(chat_engine::Config::default(), "test").expect("valid config");
        let now = chat_engine::Now::new(std::time::Instant::now(), std::time::SystemTime::now());
        let id = engine
            .connect(now, JoinRequest::default())
            .expect("accepted");
        let Some(ToHub::Connect(arrival)) = inbox.recv().await else {
            panic!("a connection first asks the hub to connect it");
        };
        let crate::hub::Arrival { link, reply, .. } = *arrival;
        reply
            .send(Ok(id))
            .expect("the connection waits for the answer");
        link.send(WriterCmd::Text(bytes::Bytes::from_static(b"{}")));
        let first = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await;
        assert!(
            matches!(first, Ok(Some(ToHub::Disconnect { client })) if client == id),
            "the failed write is reported as a disconnect"
        );
        // The peer goes too: the reader would end here (and report) if nothing had stopped it,
        // and the linger after a stop ends at once.
        drop(peer);
        tokio::time::timeout(Duration::from_secs(5), serving)
            .await
            .expect("the connection ends")
            .expect("no panic");
        let mut more = 0;
        while let Some(message) = inbox.recv().await {
            more += usize::from(matches!(message, ToHub::Disconnect { .. }));
        }
        assert_eq!(more, 0, "a second Disconnect for the same failed write");
    }

    /// A hub that takes no frames gets at most `--read-ahead-bytes` of them (a frame counts
    /// whole once read), whatever the frame credit: the reader keeps the next one and reads
    /// nothing more until the engine takes some.
    #[tokio::test]
    async fn a_reader_stops_at_its_byte_credit() {
        use crate::hub::ToHub;
        use crate::test_kit::wire::ClientFrame;
        use tokio::io::AsyncWriteExt;

        let (hub, mut inbox) = Hub::channel(64);
        let (ours, mut peer) = tokio::io::duplex(1 << 16);
        let limits = super::ConnLimits {
            read_ahead_frames: 1000,
            read_ahead_bytes: 1000,
            ..super::ConnLimits::default()
        };
        tokio::spawn(super::serve_chat(ours, start(hub, limits)));
        let mut engine =
            chat_engine::Engine::new(chat_engine::Config::default(), "test").expect("valid config");
        let now = chat_engine::Now::new(std::time::Instant::now(), std::time::SystemTime::now());
        let id = engine
            .connect(now, JoinRequest::default())
            .expect("accepted");
        let Some(ToHub::Connect(arrival)) = inbox.recv().await else {
            panic!("a connection first asks the hub to connect it");
        };
        let crate::hub::Arrival { link, reply, .. } = *arrival;
        reply.send(Ok(id)).expect("the connection waits");
        for n in 0..10u8 {
            let text = vec![b'0' + n; 300];
            peer.write_all(&ClientFrame::text(text).encode())
                .await
                .expect("written");
        }
        let mut got = Vec::new();
        while got.len() < 3 {
            match tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await {
                Ok(Some(ToHub::Frame { text, .. })) => got.push(text),
                other => panic!("expected a frame, got {:?}", other.map(|m| m.is_some())),
            }
        }
        // 900 bytes are out; the fourth frame needs 300 more than the 100 left.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(inbox.try_recv().is_err(), "a frame past the byte credit");
        // (The waiting frame holds the 100 already: tokio's semaphore is fair.)
        assert_eq!(link.byte_credit().available_permits(), 0);
        link.taken(300);
        let fourth = tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await;
        assert!(
            matches!(fourth, Ok(Some(ToHub::Frame { text, .. })) if text.starts_with('3')),
            "the kept frame goes out once the engine took one"
        );
    }
}
