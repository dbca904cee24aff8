//! Splitting the files of a copy into buckets of similar total size, one rsync each.
//!
//! Largest file first, each into the lightest bucket so far (longest-processing-time
//! scheduling): big files spread evenly over the buckets and small ones fill the gaps, so no two
//! buckets differ by more than the largest file. A cluster of 100,000 small files becomes a few
//! rsync runs with `--files-from`, not 100,000; a cluster of a few big files keeps every worker
//! busy. There are a few more buckets than workers, so a worker that finishes early takes the
//! next one instead of waiting for a slow sibling.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How many buckets per worker, at most.
pub const BUCKETS_PER_WORKER: usize = 4;

/// Buckets smaller than this are not worth an rsync run of their own.
pub const MIN_BUCKET_BYTES: u64 = 8 << 20;

/// Most files in one bucket (keeps one rsync's file list and memory modest).
pub const MAX_BUCKET_FILES: usize = 50_000;

/// How many buckets `count` files totalling `total` bytes get with `workers` workers.
pub fn bucket_count(total: u64, count: usize, workers: usize) -> usize {
    if count == 0 {
        return 0;
    }
    let workers = workers.max(1);
    let by_size = usize::try_from(total.div_ceil(MIN_BUCKET_BYTES)).unwrap_or(usize::MAX);
    let by_files = count.div_ceil(MAX_BUCKET_FILES);
    by_size
        .clamp(workers.min(count), workers * BUCKETS_PER_WORKER)
        .max(by_files)
        .min(count)
        .max(1)
}

/// Assigns the items of `sizes` to `n` buckets (n >= 1). Returns, for each bucket, the indexes
/// of its items; buckets come heaviest first and every index appears exactly once.
pub fn split(sizes: &[u64], n: usize) -> Vec<Vec<usize>> {
    let n = n.max(1);
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    // Ties broken by index so the plan is the same for the same input.
    order.sort_by_key(|&i| (Reverse(sizes[i]), i));
    let mut buckets: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n];
    // Lightest bucket first; among equals, the one with fewer files, then the lower number.
    let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> =
        (0..n).map(|b| Reverse((0, 0, b))).collect();
    for i in order {
        let Some(Reverse((bytes, files, b))) = heap.pop() else {
            break;
        };
        buckets[b].0 = bytes + sizes[i];
        buckets[b].1.push(i);
        heap.push(Reverse((bytes + sizes[i], files + 1, b)));
    }
    buckets.retain(|(_, items)| !items.is_empty());
    buckets.sort_by_key(|(bytes, items)| (Reverse(*bytes), items.first().copied()));
    buckets.into_iter().map(|(_, items)| items).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts() {
        assert_eq!(bucket_count(0, 0, 4), 0);
        assert_eq!(bucket_count(100, 3, 4), 3, "never more buckets than files");
        assert_eq!(bucket_count(100, 1000, 4), 4, "at least one per worker");
        assert_eq!(
            bucket_count(10 << 30, 1000, 4),
            16,
            "at most four per worker"
        );
        assert_eq!(bucket_count(100 << 20, 1000, 1), 4);
        assert_eq!(
            bucket_count(1 << 20, 200_000, 1),
            4,
            "file count caps a bucket"
        );
        assert_eq!(bucket_count(1 << 40, 10, 64), 10);
    }

    #[test]
    fn big_files_spread_and_small_ones_batch() {
        let mut sizes = vec![1 << 30; 4];
        sizes.extend(std::iter::repeat_n(8192, 10_000));
        let b = split(&sizes, 4);
        assert_eq!(b.len(), 4);
        for bucket in &b {
            let big = bucket.iter().filter(|&&i| sizes[i] == 1 << 30).count();
            assert_eq!(big, 1, "one big file per bucket");
        }
        let totals: Vec<u64> = b
            .iter()
            .map(|x| x.iter().map(|&i| sizes[i]).sum())
            .collect();
        assert!(totals.iter().max().unwrap() - totals.iter().min().unwrap() <= 8192);
    }

    proptest! {
        #[test]
        fn every_item_once_and_balanced(
            sizes in proptest::collection::vec(0u64..(1 << 34), 0..300),
            n in 1usize..20,
        ) {
            let b = split(&sizes, n);
            let mut seen: Vec<usize> = b.iter().flatten().copied().collect();
            seen.sort();
            prop_assert_eq!(seen, (0..sizes.len()).collect::<Vec<_>>());
            prop_assert!(b.len() <= n);
            prop_assert!(b.iter().all(|x| !x.is_empty()));
            if b.len() == n {
                let totals: Vec<u64> = b.iter().map(|x| x.iter().map(|&i| sizes[i]).sum()).collect();
                let largest = sizes.iter().copied().max().unwrap_or(0);
                let spread = totals.iter().max().unwrap() - totals.iter().min().unwrap();
                prop_assert!(spread <= largest, "spread {} > largest {}", spread, largest);
                prop_assert!(totals.windows(2).all(|w| w[0] >= w[1]), "heaviest first");
            }
        }

        #[test]
        fn count_is_sane(total in 0u64..(1 << 42), count in 0usize..300_000, workers in 1usize..65) {
            let n = bucket_count(total, count, workers);
            if count == 0 { prop_assert_eq!(n, 0); } else {
                prop_assert!(n >= 1 && n <= count);
                prop_assert!(n >= workers.min(count));
                prop_assert!(n <= (workers * BUCKETS_PER_WORKER).max(count.div_ceil(MAX_BUCKET_FILES)));
            }
        }
    }
}
