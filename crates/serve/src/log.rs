//! The prediction log, written off the request path: handlers put records on a bounded queue and a
//! writer task commits them in batches, at least every `log_flush_ms`. A crash loses at most what
//! was queued since the last commit (one flush interval, plus a batch being written). Feedback asks
//! for a flush first, so an outcome always finds its prediction.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use quantpipe_registry::{PredictionRecord, Registry};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// Rows committed per transaction at most.
const MAX_BATCH: usize = 5_000;

#[derive(Clone)]
pub struct PredictionLog {
    records: mpsc::Sender<PredictionRecord>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
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
        let writer = tokio::spawn(write_loop(registry, metrics.clone(), rx, flush_rx, flush_every));
        (PredictionLog { records, flushes, capacity, metrics }, writer)
    }

    /// Queues a record; never waits. A full queue drops it and counts the drop.
    pub fn push(&self, record: PredictionRecord) {
        if self.records.try_send(record).is_err() {
            self.metrics.log_dropped.fetch_add(1, Relaxed);
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
    flush_every: Duration,
) {
    let mut batch: Vec<PredictionRecord> = Vec::with_capacity(1024);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut tick = tokio::time::interval(flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    let mut final_attempts = 0;
    while open || (!batch.is_empty() && final_attempts < 25) {
        tokio::select! {
            received = records.recv(), if open => match received {
                Some(r) => {
                    batch.push(r);
                    // Take whatever else is already queued without waiting.
                    while batch.len() < MAX_BATCH {
                        match records.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if batch.len() < MAX_BATCH {
                        continue;
                    }
                }
                None => open = false,
            },
            Some(done) = flushes.recv() => {
                waiting.push(done);
                while let Ok(r) = records.try_recv() {
                    batch.push(r);
                }
            }
            _ = tick.tick() => {}
        }
        write(&registry, &metrics, &mut batch).await;
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

/// Commits `batch`, emptying it on success. On failure the rows stay for the next attempt, up to a
/// bound beyond which the oldest are dropped (and counted), so a dead database cannot exhaust memory.
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
            const KEEP: usize = 20 * MAX_BATCH;
            if batch.len() > KEEP {
                let excess = batch.len() - KEEP;
                batch.drain(..excess);
                metrics.log_dropped.fetch_add(excess as u64, Relaxed);
            }
        }
    }
}
