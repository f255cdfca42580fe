//! Zocket client (in progress).
