//! The features crate's integration tests. Each file here is a module of this one test binary rather than
//! a binary of its own: every test binary is compiled and linked against the whole dependency tree,
//! which is a large part of a cold CI build on 2 cores.

mod causality;
mod common;
mod cross_section;
mod multi_timeframe;
mod talib_reference;
