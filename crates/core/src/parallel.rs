//! Independent jobs over a few threads, results in input order. quantpipe's CPU work (model fits,
//! search trials) comes in handfuls of coarse jobs, for which scoped threads are enough and a thread
//! pool crate is not needed.

/// The number of threads to use for `jobs` independent jobs: one per core, at most one per job.
pub fn workers_for(jobs: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs).max(1)
}

/// Runs `f` on every item over `workers` threads (item k on thread k mod `workers`) and returns the
/// results in item order. With one worker (or one item) it runs on the calling thread.
pub fn map_in_parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().enumerate().map(|(k, item)| f(k, item)).collect();
    }
    let mut indexed: Vec<(usize, R)> = std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || (w..items.len()).step_by(workers).map(|k| (k, f(k, &items[k]))).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    indexed.sort_by_key(|(k, _)| *k);
    indexed.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_whatever_the_workers() {
        let items: Vec<u64> = (0..37).collect();
        for workers in [1, 2, 3, 8, 100] {
            let out = map_in_parallel(&items, workers, |k, &x| (k as u64, x * x));
            assert_eq!(out, items.iter().map(|&x| (x, x * x)).collect::<Vec<_>>(), "{workers} workers");
        }
        assert!(map_in_parallel(&[] as &[u8], 4, |_, &x| x).is_empty());
        assert_eq!(workers_for(0), 1);
    }
}
