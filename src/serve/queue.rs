//! The requests waiting for a batcher's next pass: the forward passes'
//! ([`model`](super::model)) and the encoders' ([`encoding`](super::encoding))
//! take their batches the same way.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The batching policy.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Most rows in one forward pass (a larger request runs alone).
    pub max_batch: usize,
    /// How long the first request of a batch waits for others (0: take what is queued, never wait).
    pub max_delay: Duration,
    /// Requests that may wait; past it, 503.
    pub max_queue: usize,
}

/// A batcher's queue: the channel its requests arrive on, and a request
/// taken from it that did not fit the last batch.
pub(super) struct Queue<J> {
    jobs: Receiver<J>,
    next: Option<J>,
}

impl<J> Queue<J> {
    pub(super) fn new(jobs: Receiver<J>) -> Queue<J> {
        Queue { jobs, next: None }
    }

    /// The next batch: the first request (waiting for one), then those queued
    /// while they fit in `max_rows` rows (`rows` of each), waiting for more
    /// until `until(first taken, requests so far)`; past that, only what is
    /// already queued. A request that does not fit starts the next batch.
    /// `None` once the channel has closed and nothing is left.
    pub(super) fn batch(
        &mut self,
        max_rows: usize,
        rows: impl Fn(&J) -> usize,
        until: impl Fn(Instant, usize) -> Instant,
    ) -> Option<Vec<J>> {
        let first = match self.next.take() {
            Some(job) => job,
            None => self.jobs.recv().ok()?,
        };
        let start = Instant::now();
        let mut taken = rows(&first);
        let mut batch = vec![first];
        while taken < max_rows {
            let job = match until(start, batch.len()).checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => match self.jobs.recv_timeout(wait) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
                _ => match self.jobs.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            if taken + rows(&job) > max_rows {
                self.next = Some(job);
                break;
            }
            taken += rows(&job);
            batch.push(job);
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn a_batch_takes_what_fits_and_the_rest_starts_the_next() {
        let (send, jobs) = channel();
        let mut queue = Queue::new(jobs);
        for rows in [3, 2, 4, 1] {
            send.send(rows).unwrap();
        }
        let now = |start: Instant, _| start;
        assert_eq!(queue.batch(6, |&r| r, now), Some(vec![3, 2]));
        assert_eq!(queue.batch(6, |&r| r, now), Some(vec![4, 1]));
        // a batch of one row at most takes one request
        send.send(1).unwrap();
        send.send(1).unwrap();
        assert_eq!(queue.batch(1, |&r| r, now), Some(vec![1]));
        assert_eq!(queue.batch(1, |&r| r, now), Some(vec![1]));
        // a request sent while the batch waits joins it
        let late = std::thread::spawn(move || {
            send.send(2).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            send.send(5).unwrap();
        });
        let wait = |start: Instant, _| start + Duration::from_secs(5);
        assert_eq!(queue.batch(10, |&r| r, wait), Some(vec![2, 5]));
        late.join().unwrap();
        assert_eq!(queue.batch(10, |&r| r, now), None);
    }
}
