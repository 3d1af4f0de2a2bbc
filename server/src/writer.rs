//! A connection's writer: takes everything queued on the link, encodes it into one buffer and
//! writes it with one call, then says what it flushed. A socket that accepts nothing for the
//! write timeout is dropped, so a slow client costs at most its queue bound. Nothing is kept
//! between batches: an idle connection's writer holds no buffer. The encoding is shared with the
//! hub's direct writes (`Link::flush_direct`).
//!
//! The writer knows nothing of the hub: it hands its tallies to whoever runs it and returns its
//! failure, and the connection (`connection.rs`) turns both into hub messages.

use std::future::Future;
use std::time::Duration;

use crate::link::Link;
use crate::ws_write::{batch_size_hint, encode_batch, Tally};

/// The socket failed, or took nothing for the write timeout: nothing more can be written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WriteFailed;

/// Runs until a `Close` was written, the link is closed and drained, or the socket fails. Each
/// write that carried chat frames is passed to `flushed` once it is done. On a failure the link
/// is closed, so nothing more is queued for a socket nobody can write to.
pub(crate) async fn write_loop<F, R>(
    link: &Link,
    write_timeout: Duration,
    mut flushed: F,
) -> Result<(), WriteFailed>
where
    F: FnMut(Tally) -> R,
    R: Future<Output = ()>,
{
    while let Some(mut batch) = link.take_all().await {
        let mut buf = Vec::with_capacity(batch_size_hint(&batch));
        let (tally, closing) = encode_batch(&mut batch, &mut buf, true);
        if !closing && !batch.is_empty() {
            link.put_back(batch);
        }
        let written = tokio::time::timeout(write_timeout, link.write_all(&buf)).await;
        if !matches!(written, Ok(Ok(()))) {
            link.close();
            return Err(WriteFailed);
        }
        if tally.frames > 0 {
            flushed(tally).await;
        }
        if closing {
            break;
        }
    }
    let _ = tokio::time::timeout(write_timeout, link.shutdown()).await;
    Ok(())
}
