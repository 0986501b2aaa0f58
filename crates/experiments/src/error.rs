//! Errors in what the user gave us (flags, config files, data files) as opposed to failures
//! while running. The binary exits with code 2 for these, before any training starts.

use std::fmt;

/// A problem with the user's input: the message names the flag, key or file and what is wrong.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// `bail_input!("--lr must be ...")`: return an [`InputError`] as an `anyhow::Error`.
#[macro_export]
macro_rules! bail_input {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::error::InputError(format!($($arg)*))))
    };
}

/// An [`InputError`] as an `anyhow::Error`.
pub fn input_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(message.into()))
}
