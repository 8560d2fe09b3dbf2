//! Backpressure from the disk back to the app-server's socket, as credits.
//!
//! An event read from the socket passes through the connection's event
//! channel, the event pump, the Supervisor's mailbox, a RunActor's mailbox
//! and its audit writer's queue before it reaches the disk. Ractor mailboxes
//! are unbounded, so a bound on any one channel only moves the pile-up to
//! the next. Instead, the connection reads a frame only while it holds a
//! [`Credit`] from its [`CreditPool`], and that credit travels with the
//! event until the audit writer has appended it (or someone drops it: an
//! event no run claims, a run that ended). So the events between the socket
//! and the disk, wherever they wait, are never more than the pool's size;
//! a disk slower than the flood stops the reads, and the app-server's
//! writes then block on a full socket.
//!
//! The one exception keeps us out of a deadlock: while a request of ours is
//! unanswered, the connection reads on without credits, because its answer
//! may sit behind events that an actor awaiting that answer would only
//! release later. What it reads then is what the server had written before
//! the answer.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Events read from one connection and not yet on disk. An audit append
/// takes up to 512 events at once, so this lets the writer append one batch
/// while the next fills; an event (a delta, its parsed copy and its audit
/// record) is a few KB at most, so the whole pool stays within a few MB.
pub const EVENT_CREDITS: usize = 1024;

/// A connection's credits, shared by the reader and the credits it hands
/// out.
#[derive(Debug, Clone)]
pub struct CreditPool(Arc<Semaphore>);

impl CreditPool {
    pub fn new(credits: usize) -> CreditPool {
        CreditPool(Arc::new(Semaphore::new(credits)))
    }

    /// Waits until an event read earlier is written or dropped.
    pub async fn acquire(&self) -> Credit {
        // The pool is never closed, so this only fails if it were; an
        // uncounted event is then better than a reader that stops for good.
        match self.0.clone().acquire_owned().await {
            Ok(permit) => Credit {
                _place: Some(Arc::new(permit)),
            },
            Err(_) => Credit::none(),
        }
    }

    /// Credits no event holds now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

/// One event's place between the socket and the disk; it goes back to its
/// pool when the event is written or dropped. Clones share the place, so
/// it returns with the last of them.
#[derive(Debug, Clone, Default)]
pub struct Credit {
    /// Held for its drop, which gives the place back.
    _place: Option<Arc<OwnedSemaphorePermit>>,
}

impl Credit {
    /// For an event that counts against no pool: one built in a test, read
    /// while awaiting an answer, or of our own making.
    pub fn none() -> Credit {
        Credit { _place: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_credit_returns_with_its_last_clone() {
        let pool = CreditPool::new(2);
        let credit = pool.acquire().await;
        let copy = credit.clone();
        assert_eq!(pool.available(), 1);
        drop(credit);
        assert_eq!(pool.available(), 1, "a clone still holds the place");
        drop(copy);
        assert_eq!(pool.available(), 2);
    }
}
