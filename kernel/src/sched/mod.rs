//! The scheduler (OSv's design, see docs/scheduler.md when it lands): the
//! fairness policy ([`policy`]) is here and host-tested; run queues,
//! wakeups and context switching join it with the SMP work.

pub mod policy;
pub mod wakeq;
