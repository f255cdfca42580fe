//! Zocket hyper adapter (in progress).
