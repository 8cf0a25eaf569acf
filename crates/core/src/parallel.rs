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

/// Like [`map_in_parallel`], for jobs of uneven size: each thread takes the next job as it finishes
/// one, costliest first by the caller's estimate `cost`, so the last jobs to finish are short ones.
/// Which thread ran a job never changes its result; results come back in item order.
pub fn map_balanced<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    cost: impl Fn(&T) -> u64,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().enumerate().map(|(k, item)| f(k, item)).collect();
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(cost(&items[k])));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut indexed: Vec<(usize, R)> = std::thread::scope(|scope| {
        let (f, order, next) = (&f, &order, &next);
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&k) = order.get(at) else { break };
                        done.push((k, f(k, &items[k])));
                    }
                    done
                })
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
        for workers in [1, 2, 3, 100] {
            let out = map_balanced(&items, workers, |&x| x % 5, |k, &x| (k as u64, x * x));
            assert_eq!(out, items.iter().map(|&x| (x, x * x)).collect::<Vec<_>>(), "{workers} workers, balanced");
        }
        assert!(map_balanced(&[] as &[u8], 4, |_| 0, |_, &x| x).is_empty());
        assert_eq!(workers_for(0), 1);
    }
}
