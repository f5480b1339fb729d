//! Hands a commit's acknowledgements to the requests of one worker thread with one wake-up.
//!
//! An actix worker runs its requests on a current-thread runtime. Waking one of its tasks from
//! another thread always writes the runtime's eventfd, so the commit thread answering each
//! request on its own paid one `write` syscall per request, about 20 per commit under load
//! (BENCHMARKS.md, 2026-12-04). A relay is a task on the worker thread itself: the commit thread
//! sends it every answer of a commit that is meant for that thread in one message, and it hands
//! them out locally, where a wake-up is a push onto the thread's own run queue.

use std::cell::RefCell;

use tokio::sync::{mpsc, oneshot};

use super::{Accepted, StoreError};

/// What an ingest request is answered.
pub type Answer = Result<Vec<Accepted>, StoreError>;

/// Where one ingest request waits for its answer.
pub type Reply = oneshot::Sender<Answer>;

/// A worker thread's relay (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Relay(mpsc::UnboundedSender<Vec<(Reply, Answer)>>);

thread_local! {
    static THIS_THREAD: RefCell<Option<Relay>> = const { RefCell::new(None) };
}

impl Relay {
    /// The relay of the calling thread, started on first use.
    ///
    /// # Panics
    /// Outside a [`tokio::task::LocalSet`]: call it from a request handler of an actix worker.
    #[must_use]
    pub fn this_thread() -> Relay {
        THIS_THREAD.with(|slot| {
            let mut slot = slot.borrow_mut();
            if let Some(relay) = slot.as_ref().filter(|relay| !relay.0.is_closed()) {
                return relay.clone();
            }
            let (sender, mut answers) = mpsc::unbounded_channel::<Vec<(Reply, Answer)>>();
            tokio::task::spawn_local(async move {
                while let Some(batch) = answers.recv().await {
                    for (reply, answer) in batch {
                        let _ = reply.send(answer);
                    }
                }
            });
            let relay = Relay(sender);
            *slot = Some(relay.clone());
            relay
        })
    }
}

/// The answers of one commit, grouped by relay so each relay is woken once.
#[derive(Default)]
pub struct Answers {
    by_relay: Vec<(Relay, Vec<(Reply, Answer)>)>,
}

impl Answers {
    /// Answers a request now if it came without a relay, else queues the answer for its relay.
    pub fn add(&mut self, relay: Option<Relay>, reply: Reply, answer: Answer) {
        let Some(relay) = relay else {
            let _ = reply.send(answer);
            return;
        };
        match self
            .by_relay
            .iter_mut()
            .find(|(known, _)| known.0.same_channel(&relay.0))
        {
            Some((_, batch)) => batch.push((reply, answer)),
            None => self.by_relay.push((relay, vec![(reply, answer)])),
        }
    }

    /// Sends every relay its answers; a relay whose thread is gone is bypassed.
    pub fn send(self) {
        for (relay, batch) in self.by_relay {
            if let Err(mpsc::error::SendError(batch)) = relay.0.send(batch) {
                for (reply, answer) in batch {
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: usize) -> Answer {
        Ok(vec![Accepted::Duplicate {
            seq: crate::ids::EventSeq(n as u64),
        }])
    }

    fn seq_of(answer: Answer) -> u64 {
        match answer.expect("an answer").as_slice() {
            [Accepted::Duplicate { seq }] => seq.0,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    #[test]
    fn a_thread_keeps_one_relay_and_every_answer_arrives() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let relay = Relay::this_thread();
            assert!(relay.0.same_channel(&Relay::this_thread().0));
            let mut waiting = Vec::new();
            let mut answers = Answers::default();
            for n in 0..5 {
                let (reply, wait) = oneshot::channel();
                answers.add(Some(relay.clone()), reply, answer(n));
                waiting.push(wait);
            }
            let (reply, direct) = oneshot::channel();
            answers.add(None, reply, answer(99));
            assert_eq!(answers.by_relay.len(), 1, "one message for the thread");
            // Sent from another thread, as the commit thread does.
            std::thread::spawn(move || answers.send())
                .join()
                .expect("the sender thread");
            assert_eq!(seq_of(direct.await.expect("answered at once")), 99);
            for (n, wait) in waiting.into_iter().enumerate() {
                assert_eq!(seq_of(wait.await.expect("relayed")), n as u64);
            }
        });
    }

    #[test]
    fn answers_for_a_stopped_relay_are_sent_directly() {
        let (sender, receiver) = mpsc::unbounded_channel();
        drop(receiver);
        let mut answers = Answers::default();
        let (reply, mut wait) = oneshot::channel();
        answers.add(Some(Relay(sender)), reply, answer(7));
        answers.send();
        assert_eq!(seq_of(wait.try_recv().expect("answered")), 7);
    }
}
