//! Zocket warp adapter (in progress).
