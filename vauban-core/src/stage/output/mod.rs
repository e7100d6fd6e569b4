//! Ansible's output: followed line by line from the stage's log file while the
//! playbook runs, sent as [`Event::AnsibleLine`]s, gathered into one
//! [`Event::AnsibleTask`] per task (its name and each host's result, what a
//! person follows; the lines carry `-v --diff`'s detail, which the log keeps),
//! and scanned for the task and host that failed (`TASK [name]`,
//! `fatal: [host]: FAILED! => {...}`).
//! A line's control characters are escaped ([`crate::printable`]) before it is
//! sent or scanned: what the events, the failure and the tail carry is safe
//! to print. The log file keeps the bytes as Ansible wrote them.
//!
//! [`scanner`] reads the lines for the failure and the recap, [`tasks`] gathers
//! each task's results, [`follower`] follows the log while Ansible writes it.

mod follower;
mod scanner;
mod tasks;

pub(crate) use follower::Follower;
pub(crate) use scanner::Scanner;
pub(crate) use tasks::Tasks;

/// How many lines of output an error carries.
pub(crate) const TAIL_LINES: usize = 25;
