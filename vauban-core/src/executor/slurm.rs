//! The Slurm backend (placeholder, filled below).
