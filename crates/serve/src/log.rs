//! The prediction log, written off the request path: handlers put records on a bounded queue and a
//! writer task commits them in batches, at least every `log_flush_ms`. A crash loses at most what
//! was queued since the last commit (one flush interval, plus a batch being written). Feedback asks
//! for a flush first, so an outcome always finds its prediction.
//!
//! The writer sleeps between flushes instead of waiting on the queue: a receiver parked on the
//! queue is woken by every push, which under load meant a task wake-up (and often a worker thread
//! unparked) per request. Pushers wake it early only when a full batch is waiting.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use quantpipe_registry::{PredictionRecord, Registry};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::metrics::Metrics;

/// Rows committed per transaction at most.
const MAX_BATCH: usize = 5_000;

#[derive(Clone)]
pub struct PredictionLog {
    records: mpsc::Sender<PredictionRecord>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    /// Signalled when a full batch is queued, so a burst is written before the next tick.
    backlog: Arc<Notify>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl PredictionLog {
    /// Starts the writer task; it ends (after a last flush) once every `PredictionLog` clone is dropped.
    pub fn start(
        registry: Registry,
        metrics: Arc<Metrics>,
        capacity: usize,
        flush_every: Duration,
    ) -> (PredictionLog, tokio::task::JoinHandle<()>) {
        let (records, rx) = mpsc::channel(capacity);
        let (flushes, flush_rx) = mpsc::channel(64);
        let backlog = Arc::new(Notify::new());
        let writer = tokio::spawn(write_loop(registry, metrics.clone(), rx, flush_rx, backlog.clone(), flush_every));
        (PredictionLog { records, flushes, backlog, capacity, metrics }, writer)
    }

    /// Queues a record; never waits. A full queue drops it and counts the drop.
    pub fn push(&self, record: PredictionRecord) {
        if self.records.try_send(record).is_err() {
            self.metrics.log_dropped.fetch_add(1, Relaxed);
        } else if self.queued() >= MAX_BATCH {
            self.backlog.notify_one();
        }
    }

    pub fn queued(&self) -> usize {
        self.capacity - self.records.capacity()
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.flushes.send(done).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(
    registry: Registry,
    metrics: Arc<Metrics>,
    mut records: mpsc::Receiver<PredictionRecord>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
    backlog: Arc<Notify>,
    flush_every: Duration,
) {
    let mut batch: Vec<PredictionRecord> = Vec::with_capacity(1024);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut tick = tokio::time::interval(flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    let mut final_attempts = 0;
    while open || (!batch.is_empty() && final_attempts < 25) {
        if open {
            tokio::select! {
                Some(done) = flushes.recv() => waiting.push(done),
                _ = backlog.notified() => {}
                _ = tick.tick() => {}
            }
        }
        // Commit what is queued now, a batch per transaction; rows pushed meanwhile wait for the
        // next round, so a steady stream cannot keep the writer from answering flushes.
        let mut queued = records.len();
        loop {
            while batch.len() < MAX_BATCH && queued > 0 {
                match records.try_recv() {
                    Ok(r) => {
                        batch.push(r);
                        queued -= 1;
                    }
                    Err(TryRecvError::Empty) => queued = 0,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        queued = 0;
                    }
                }
            }
            write(&registry, &metrics, &mut batch).await;
            if !batch.is_empty() || queued == 0 {
                break;
            }
        }
        if records.is_closed() && records.is_empty() {
            open = false;
        }
        if batch.is_empty() {
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        } else if !open {
            // Shutting down and the database refuses: retry for a few seconds, then give up.
            final_attempts += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for done in waiting.drain(..) {
        let _ = done.send(());
    }
}

/// Commits `batch`, emptying it on success. On failure the rows stay for the next attempt; the
/// writer takes no more than a batch meanwhile, so a dead database fills the bounded queue, whose
/// overflow is dropped and counted, instead of exhausting memory.
async fn write(registry: &Registry, metrics: &Metrics, batch: &mut Vec<PredictionRecord>) {
    if batch.is_empty() {
        return;
    }
    match registry.log_predictions(batch).await {
        Ok(()) => {
            metrics.log_written.fetch_add(batch.len() as u64, Relaxed);
            batch.clear();
        }
        Err(e) => {
            metrics.log_write_errors.fetch_add(1, Relaxed);
            eprintln!("quantpipe serve: writing {} prediction log rows failed (will retry): {e}", batch.len());
        }
    }
}
