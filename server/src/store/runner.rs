//! The store's loop, the same on a thread and on a task: wait for a request or the next upkeep
//! deadline, take every request already waiting as one batch, apply it, repeat; when the hub
//! drops its sender, stop cleanly.
//!
//! The thread runs the loop in a current-thread tokio runtime of its own rather than with
//! `blocking_recv`: the loop needs to wait for a request *or* a deadline (relaxed sync, probe,
//! sweep), which `blocking_recv` cannot, and so both runners share one loop.

use std::future::Future;
use std::io;

use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::sync::oneshot;

use super::worker::{Flow, Reports, Worker};
use super::{Request, StoreHandle};

pub(super) fn spawn_thread(worker: Worker) -> io::Result<StoreHandle> {
    let (handle, run) = prepare(worker);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("chat-store".to_owned())
        .spawn(move || runtime.block_on(run))?;
    Ok(handle)
}

pub(super) fn spawn_task(worker: Worker) -> StoreHandle {
    let (handle, run) = prepare(worker);
    tokio::spawn(run);
    handle
}

fn prepare(worker: Worker) -> (StoreHandle, impl Future<Output = ()> + Send) {
    let (requests, inbox) = mpsc::unbounded_channel();
    let (reports, outbox) = mpsc::unbounded_channel();
    let (done, finished) = oneshot::channel();
    let handle = StoreHandle {
        requests: Some(requests),
        reports: outbox,
        done: finished,
        stats: worker.stats(),
    };
    let run = async move {
        let result = run(worker, inbox, &reports).await;
        // The handle may be gone (the hub stopped without `shutdown`); nobody to tell then.
        let _ = done.send(result);
    };
    (handle, run)
}

async fn run(
    mut worker: Worker,
    mut inbox: UnboundedReceiver<Request>,
    reports: &Reports,
) -> Result<(), String> {
    loop {
        let next = match worker.deadline() {
            Some(at) => tokio::select! {
                // Requests first: upkeep can wait for a batch, a client should not.
                biased;
                next = inbox.recv() => next,
                () = tokio::time::sleep_until(at.into()) => {
                    if let Flow::Stop(why) = worker.on_timer(reports) {
                        return Err(why);
                    }
                    continue;
                }
            },
            None => inbox.recv().await,
        };
        let Some(first) = next else {
            return worker.shutdown();
        };
        let delay = worker.commit_delay();
        if !delay.is_zero() {
            // A slow disk, simulated: requests keep arriving while this batch waits.
            tokio::time::sleep(delay).await;
        }
        let mut batch = vec![first];
        while let Ok(more) = inbox.try_recv() {
            batch.push(more);
        }
        if let Flow::Stop(why) = worker.batch(batch, reports) {
            return Err(why);
        }
        // A store that is never idle still syncs, probes and sweeps on time.
        if let Flow::Stop(why) = worker.on_timer(reports) {
            return Err(why);
        }
    }
}
