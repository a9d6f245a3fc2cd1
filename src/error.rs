//! Error chains, and how a command ended: [`Outcome`] and its exit status, decided in
//! [`Outcome::exit_code`] and nowhere else.

/// An error and its causes on one line ("error sending request: connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The signals that stop a run cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }
}

/// How a command ended, as far as the orchestrator that started it is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for is done (committed, empty, or skipped by `--resume`).
    Done,
    /// Some work failed after retries (or the bookkeeping after it did); what committed stays.
    Partial,
    /// Usage, configuration, authentication or unknown campaign, found before anything was
    /// written.
    Refused,
    /// The data broke the contract; nothing wrong was committed.
    ContractBroken,
    /// Stopped by a signal; what committed before it stays.
    Interrupted(Signal),
}

impl Outcome {
    /// The more serious of two outcomes, for a command that ran several tables: a signal,
    /// then broken data (alert a person), then a refusal (do not retry), then failures (retry).
    pub fn worst(self, other: Outcome) -> Outcome {
        fn rank(o: Outcome) -> u8 {
            match o {
                Outcome::Done => 0,
                Outcome::Partial => 1,
                Outcome::Refused => 2,
                Outcome::ContractBroken => 3,
                Outcome::Interrupted(_) => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// The contract's exit status of an outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            // Retry, with --resume.
            Outcome::Partial => 1,
            // Do not retry: a person must fix the command line or the credentials.
            Outcome::Refused => 2,
            // Alert a person.
            Outcome::ContractBroken => 3,
            // 128 + the signal's number, as shells report it.
            Outcome::Interrupted(Signal::Int) => 130,
            Outcome::Interrupted(Signal::Term) => 143,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Outcome::Done.exit_code(), 0);
        assert_eq!(Outcome::Partial.exit_code(), 1);
        assert_eq!(Outcome::Refused.exit_code(), 2);
        assert_eq!(Outcome::ContractBroken.exit_code(), 3);
        assert_eq!(Outcome::Interrupted(Signal::Int).exit_code(), 130);
        assert_eq!(Outcome::Interrupted(Signal::Term).exit_code(), 143);
    }
}
