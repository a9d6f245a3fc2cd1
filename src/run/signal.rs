//! Stopping a run cleanly on SIGINT or SIGTERM. The signal does not cut the run off where it
//! stands: work that has not yet made anything visible is abandoned at once, but a partition
//! whose file is placed finishes its ledger entry and is reported as committed.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::error::Signal;

#[derive(Clone)]
pub(crate) struct Shutdown(watch::Receiver<Option<Signal>>);

impl Shutdown {
    /// Listens for the first SIGINT or SIGTERM from now on. The handlers are installed before
    /// this returns, so no signal after it kills the process outright.
    pub(crate) fn listen() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        let handlers = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        tokio::spawn(async move {
            let received = match handlers {
                (Ok(mut int), Ok(mut term)) => tokio::select! {
                    _ = int.recv() => Signal::Int,
                    _ = term.recv() => Signal::Term,
                },
                // No handler could be installed: only Ctrl-C stops the run cleanly.
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    Signal::Int
                }
            };
            let _ = tx.send(Some(received));
            // Keep the sender, so that waiting receivers see the signal and never a closed channel.
            std::future::pending::<()>().await;
        });
        Shutdown(rx)
    }

    /// The signal, if one came.
    pub(crate) fn received(&self) -> Option<Signal> {
        *self.0.borrow()
    }

    async fn wait(&self) -> Signal {
        let mut rx = self.0.clone();
        loop {
            if let Some(signal) = *rx.borrow_and_update() {
                return signal;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `work` unless a signal comes first (or came already), in which case `work` is
    /// dropped where it stands. Only for work that makes nothing visible.
    pub(crate) async fn unless_stopped<F: Future>(&self, work: F) -> Result<F::Output, Signal> {
        tokio::select! {
            biased;
            signal = self.wait() => Err(signal),
            value = work => Ok(value),
        }
    }
}
