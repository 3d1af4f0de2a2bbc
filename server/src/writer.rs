//! A connection's writer: takes everything queued on the link, encodes it into one buffer and
//! writes it with one call, then reports the flushed frames to the hub. A socket that accepts
//! nothing for the write timeout is dropped, so a slow client costs at most its queue bound.
//! Nothing is kept between batches: an idle connection's writer holds no buffer. The encoding
//! is shared with the hub's direct writes (`Link::flush_direct`).

use std::time::Duration;

use chat_engine::ClientId;

use crate::hub::{HubHandle, ToHub};
use crate::link::Link;
use crate::ws_write::{batch_size_hint, encode_batch, Tally};

/// Who hears about what the writer did.
pub(crate) enum Report {
    /// Chat connections: flushed counts and failures go to the hub.
    Hub { hub: HubHandle, client: ClientId },
    /// Echo connections: nobody keeps accounts.
    Nobody,
}

impl Report {
    async fn flushed(&self, tally: Tally) {
        if let Report::Hub { hub, client } = self {
            hub.send(ToHub::Flushed {
                client: *client,
                tally,
            })
            .await;
        }
    }

    async fn failed(&self) {
        if let Report::Hub { hub, client } = self {
            hub.send(ToHub::Disconnect { client: *client }).await;
        }
    }
}

/// Runs until a `Close` was written, the link is closed and drained, or the socket fails.
pub(crate) async fn write_loop(link: &Link, report: Report, write_timeout: Duration) {
    while let Some(mut batch) = link.take_all().await {
        let mut buf = Vec::with_capacity(batch_size_hint(&batch));
        let (tally, closing) = encode_batch(&mut batch, &mut buf, true);
        if !closing && !batch.is_empty() {
            link.put_back(batch);
        }
        let written = tokio::time::timeout(write_timeout, link.write_all(&buf)).await;
        if !matches!(written, Ok(Ok(()))) {
            link.close();
            report.failed().await;
            return;
        }
        if tally.frames > 0 {
            report.flushed(tally).await;
        }
        if closing {
            break;
        }
    }
    let _ = tokio::time::timeout(write_timeout, link.shutdown()).await;
}
