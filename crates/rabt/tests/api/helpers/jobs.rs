//! Job kinds that exist only in tests.

use rabt::jobs::JobArgs;
use serde::{Deserialize, Serialize};

/// A job whose effect is a row in `job_effects`, written together with the
/// job's completion (its handler is registered by the job tests).
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub tag: String,
}

impl JobArgs for Record {
    const KIND: &'static str = "test.record";
}
