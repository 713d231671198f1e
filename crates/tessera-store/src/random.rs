//! The OS CSPRNG, through aws-lc-rs.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use tessera_core::random::SecureRandom;

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone)]
pub struct OsRandom(SystemRandom);

impl SecureRandom for OsRandom {
    fn fill(&self, dest: &mut [u8]) {
        // Invariant: the system RNG only fails when the OS cannot provide entropy; handing out
        // predictable secrets would be far worse than stopping.
        #[allow(clippy::expect_used)]
        self.0
            .fill(dest)
            .expect("the operating system's random number generator failed");
    }
}
