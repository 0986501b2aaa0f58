//! CIFAR-10: the original binary batches from a directory (`data_batch_1.bin` ...
//! `data_batch_5.bin`, `test_batch.bin`; each record a label byte and 3,072 bytes, the R, G and
//! B planes of a 32x32 image, row by row), or the hub through candle-datasets. Images are
//! stored channels-last here (height, width, channel), as every feature map of this crate is.
//!
//! Read here, not by candle-datasets' `load_dir`, which insists on 10,000 records per file (so
//! no small file can test it) and panics on a short one. Its hub path (parquet of PNGs) returns
//! `[N, 3, 32, 32]` with height and width swapped (it permutes image-rs's height-width-channel
//! bytes as if they were width-height-channel); [`from_hub_tensor`] undoes that, and a test
//! holds it to the binary layout.

use std::path::Path;

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::error::input_error;
use crate::run::net::CLASSES;

pub const SIDE: usize = 32;
pub const CHANNELS: usize = 3;
pub const PIXELS: usize = SIDE * SIDE * CHANNELS;
const RECORD: usize = 1 + PIXELS;

/// The training batches, then the test batch.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";

/// Images (channels-last bytes, [`PIXELS`] per image) and labels.
#[derive(Debug)]
pub struct Images {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

/// Whether `dir` holds the binary batches.
pub fn is_batch_dir(dir: &Path) -> bool {
    dir.join(TEST_FILE).is_file()
}

/// One binary batch file, any number of records; errors name the file and what is wrong.
pub fn read_batch(path: &Path) -> Result<Images> {
    let bytes = std::fs::read(path)
        .map_err(|e| input_error(format!("cannot read CIFAR file {}: {e}", path.display())))?;
    parse_batch(&bytes).map_err(|e| input_error(format!("{}: {e}", path.display())))
}

/// The records of a batch, each image moved from channel planes to channels-last.
pub fn parse_batch(bytes: &[u8]) -> std::result::Result<Images, String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format!(
            "{} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes: a label and a \
             32x32x3 image)",
            bytes.len()
        ));
    }
    let count = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(count * PIXELS);
    let mut labels = Vec::with_capacity(count);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] as usize >= CLASSES {
            return Err(format!("record {i} has label {}, outside 0..=9", record[0]));
        }
        labels.push(record[0]);
        let planes = &record[1..];
        for at in 0..SIDE * SIDE {
            for c in 0..CHANNELS {
                pixels.push(planes[c * SIDE * SIDE + at]);
            }
        }
    }
    Ok(Images { pixels, labels })
}

/// The five training batches and the test batch of `dir`.
pub fn read_dir(dir: &Path) -> Result<(Images, Images)> {
    let mut train = Images {
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for name in TRAIN_FILES {
        let batch = read_batch(&dir.join(name))?;
        train.pixels.extend(batch.pixels);
        train.labels.extend(batch.labels);
    }
    Ok((train, read_batch(&dir.join(TEST_FILE))?))
}

/// candle-datasets' hub images (`[N, 3, W, H]` floats in [0, 1], see the module's note) as
/// channels-last bytes.
pub fn from_hub_tensor(images: &Tensor) -> Result<Vec<u8>> {
    Ok((images.permute((0, 3, 2, 1))? * 255.0)?
        .round()?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose pixel (c, y, x) holds `c * 64 + y * 2 + x % 2` (distinct per plane, row
    /// and column parity).
    fn record(label: u8) -> Vec<u8> {
        let mut r = vec![label];
        for c in 0..CHANNELS {
            for y in 0..SIDE {
                for x in 0..SIDE {
                    r.push((c * 64 + y * 2 + x % 2) as u8);
                }
            }
        }
        r
    }

    #[test]
    fn batches_become_channels_last_and_bad_files_are_named() {
        let bytes: Vec<u8> = [record(3), record(9)].concat();
        let images = parse_batch(&bytes).unwrap();
        assert_eq!(images.labels, [3, 9]);
        // Pixel (y, x, c) of image 1.
        let at = |y: usize, x: usize, c: usize| images.pixels[PIXELS + (y * SIDE + x) * 3 + c];
        assert_eq!(at(5, 7, 2), (2 * 64 + 5 * 2 + 1) as u8);
        assert_eq!(at(31, 0, 0), 62);
        assert!(parse_batch(&bytes[..100])
            .unwrap_err()
            .contains("100 bytes"));
        let mut bad = record(12);
        bad.extend(record(0));
        assert!(parse_batch(&bad)
            .unwrap_err()
            .contains("record 0 has label 12"));
    }

    /// The hub path's tensor, made the way candle-datasets makes it from image-rs bytes
    /// (height, width, channel) permuted as (0, 3, 2, 1), comes back to the binary layout.
    #[test]
    fn hub_images_come_back_to_the_binary_layout() {
        let images = parse_batch(&record(1)).unwrap();
        // image-rs's bytes of the same image are already height, width, channel.
        let decoded = Tensor::from_vec(
            images.pixels.clone(),
            (1, SIDE, SIDE, 3),
            &candle_core::Device::Cpu,
        )
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
        let as_candle_datasets_returns = (decoded.permute((0, 3, 2, 1)).unwrap() / 255.0).unwrap();
        assert_eq!(
            from_hub_tensor(&as_candle_datasets_returns).unwrap(),
            images.pixels
        );
    }
}
