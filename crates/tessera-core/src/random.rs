//! The random source port: every secret Tessera mints comes from here.

/// A cryptographically secure random source (the OS CSPRNG in production).
pub trait SecureRandom: Send + Sync {
    /// Fills `dest` with random bytes. An implementation that cannot must abort the process
    /// rather than return predictable bytes: failing closed is the only safe outcome.
    fn fill(&self, dest: &mut [u8]);
}
