//! The cryptographic limit of this machine: RS256 (RSA-2048, PKCS#1 v1.5, SHA-256) signatures
//! and verifications per second with aws-lc-rs, the library and calls Tessera signs and
//! verifies with (`tessera-store`'s `KeyPairSigner` and `Verifier`).
//!
//! Generates one RSA-2048 key, then measures, each for `--seconds`: signing on one thread,
//! verification on one thread, and both again on `--threads` threads at once (default: the
//! available cores). Signs a message the size of a Tessera access token's signing input.
//! Prints one JSON line: the per-core rates, `cores`, the limits as defined for the benchmark
//! (`sign_limit = sign_per_second_per_core × cores`, `verify_limit` likewise) and the rates
//! measured on all threads at once, as a cross-check of that multiplication.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaPublicKeyComponents,
};
use clap::Parser;
use serde_json::json;

/// Measures RS256 sign/s and verify/s with aws-lc-rs.
#[derive(Debug, Parser)]
struct Args {
    /// Length of each of the four measurements, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Threads of the all-cores cross-check (default: the available cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// The key under test and a JWT-sized message with its signature.
struct Material {
    pair: KeyPair,
    public: RsaPublicKeyComponents<Vec<u8>>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl Material {
    fn new() -> Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .ok()
            .context("RSA key generation")?;
        let public = RsaPublicKeyComponents {
            n: pair
                .public_key()
                .modulus()
                .big_endian_without_leading_zero()
                .to_vec(),
            e: pair
                .public_key()
                .exponent()
                .big_endian_without_leading_zero()
                .to_vec(),
        };
        // About the length of a Tessera access token's `header.payload` (base64url).
        let message = vec![b'e'; 420];
        let signature = sign(&pair, &SystemRandom::new(), &message)?;
        public
            .verify(&RSA_PKCS1_2048_8192_SHA256, &message, &signature)
            .ok()
            .context("the fresh signature does not verify")?;
        Ok(Self {
            pair,
            public,
            message,
            signature,
        })
    }
}

fn sign(pair: &KeyPair, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>> {
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut signature)
        .ok()
        .context("signing failed")?;
    Ok(signature)
}

#[derive(Clone, Copy)]
enum Op {
    Sign,
    Verify,
}

/// Operations per second of `op` on one thread for `seconds`.
fn run(material: &Material, op: Op, seconds: f64) -> Result<f64> {
    let rng = SystemRandom::new();
    let deadline = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < deadline {
        // Batches of 8 keep the clock out of the measurement.
        for _ in 0..8 {
            match op {
                Op::Sign => {
                    std::hint::black_box(sign(&material.pair, &rng, &material.message)?);
                }
                Op::Verify => material
                    .public
                    .verify(
                        &RSA_PKCS1_2048_8192_SHA256,
                        &material.message,
                        std::hint::black_box(&material.signature),
                    )
                    .ok()
                    .context("verification failed")?,
            }
        }
        n += 8;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Total operations per second of `op` on `threads` threads at once.
fn run_parallel(material: &Arc<Material>, op: Op, seconds: f64, threads: usize) -> Result<f64> {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let material = material.clone();
            std::thread::spawn(move || run(&material, op, seconds))
        })
        .collect();
    let mut total = 0.0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
    }
    Ok(total)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = args.threads.unwrap_or(cores).max(1);
    let material = Arc::new(Material::new()?);
    let sign_1 = run(&material, Op::Sign, args.seconds)?;
    let verify_1 = run(&material, Op::Verify, args.seconds)?;
    let sign_n = run_parallel(&material, Op::Sign, args.seconds, threads)?;
    let verify_n = run_parallel(&material, Op::Verify, args.seconds, threads)?;
    println!(
        "{}",
        json!({
            "alg": "RS256",
            "key": "RSA-2048",
            "library": "aws-lc-rs",
            "seconds_each": args.seconds,
            "cores": cores,
            "sign_per_second_per_core": sign_1.round(),
            "verify_per_second_per_core": verify_1.round(),
            "sign_limit": (sign_1 * cores as f64).round(),
            "verify_limit": (verify_1 * cores as f64).round(),
            "threads": threads,
            "sign_per_second_all_threads": sign_n.round(),
            "verify_per_second_all_threads": verify_n.round(),
        })
    );
    Ok(())
}
