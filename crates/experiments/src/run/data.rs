//! Data: the four IDX files (raw or gzip) or the Hugging Face hub through candle-datasets, or
//! MNIST-1D generated in-process (`run::mnist1d`); the stratified train/validation split, and
//! seeded mini-batches that stay on the device. Inputs are rows of any length (784 pixels, 40
//! samples of a signal).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_datasets::vision::Dataset;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::input_error;
use crate::run::cifar;
use crate::run::config::{DatasetName, TrainConfig};
use crate::run::mnist1d::{self, Mnist1dArgs};

pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
pub use crate::run::net::CLASSES;
const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// The four files of a data set in the standard IDX layout (as `load_dir` of candle-datasets
/// expects them), each found raw or with a `.gz` suffix.
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// A split's inputs on the host, row after row: image bytes (scaled to [0, 1] as they are
/// uploaded) or values as they are.
#[derive(Clone, Debug)]
pub enum Inputs {
    Pixels(Vec<u8>),
    Values(Vec<f32>),
}

/// Inputs `[count, width]` and labels `[count]`, on the host.
#[derive(Clone, Debug)]
pub struct RawSplit {
    pub inputs: Inputs,
    pub width: usize,
    pub labels: Vec<u8>,
}

impl RawSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A whole data set on the host, as read.
#[derive(Clone, Debug)]
pub struct RawData {
    pub train: RawSplit,
    pub test: RawSplit,
    /// Where it came from, for the run's records.
    pub source: String,
}

/// The length of one input of `dataset`: 784 pixels, or the signal length of MNIST-1D made
/// with `mnist1d`.
pub fn input_width(dataset: DatasetName, mnist1d: &Mnist1dArgs) -> usize {
    dataset.input_shape(mnist1d).features()
}

/// Loads a data set from `dir` when given, else through candle-datasets from the hub (the local
/// hub cache first). Errors name the file and what is wrong.
///
/// A directory that holds no IDX files but a subdirectory named after the data set
/// (`mnist/`, `fashion-mnist/`) stands for that subdirectory, so one `--data-dir` serves a sweep
/// with a `dataset` axis.
///
/// MNIST-1D is generated with the arguments `mnist1d`, whatever the directory says.
pub fn load(dataset: DatasetName, mnist1d: &Mnist1dArgs, dir: Option<&Path>) -> Result<RawData> {
    match (dataset, dir) {
        (DatasetName::Mnist1d, _) => generate_mnist1d(mnist1d),
        (DatasetName::Cifar10, Some(dir)) => load_cifar_dir(&dataset_dir(dataset, dir)),
        (_, Some(dir)) => load_dir(&dataset_dir(dataset, dir)),
        (_, None) => load_hub(dataset),
    }
}

/// MNIST-1D from its generator, the package's split into training and test signals.
pub fn generate_mnist1d(args: &Mnist1dArgs) -> Result<RawData> {
    let data = mnist1d::make_dataset(args).map_err(|e| input_error(format!("mnist1d: {e}")))?;
    let split = |x: &[f64], y: &[u8]| RawSplit {
        inputs: Inputs::Values(x.iter().map(|&v| v as f32).collect()),
        width: data.length,
        labels: y.to_vec(),
    };
    Ok(RawData {
        train: split(&data.train_x, &data.train_y),
        test: split(&data.test_x, &data.test_y),
        source: format!(
            "generated: mnist1d {} recipe, seed {}, {} signals of length {}",
            mnist1d::PACKAGE_VERSION,
            args.seed,
            args.num_samples,
            args.final_seq_length
        ),
    })
}

/// `dir/<dataset name>` when `dir` has no images file of its own and that subdirectory exists
/// (for CIFAR-10 also `cifar-10-batches-bin`, the folder of the original archive).
pub fn dataset_dir(dataset: DatasetName, dir: &Path) -> PathBuf {
    let (own, subs) = match dataset {
        // The archive's folder may also sit inside a `cifar10` folder.
        DatasetName::Cifar10 => (
            cifar::is_batch_dir(dir),
            [
                dir.join("cifar10"),
                dir.join("cifar-10-batches-bin"),
                dir.join("cifar10").join("cifar-10-batches-bin"),
            ]
            .into_iter()
            .filter(|sub| cifar::is_batch_dir(sub))
            .collect(),
        ),
        _ => (
            [IDX_FILES[0].to_string(), format!("{}.gz", IDX_FILES[0])]
                .iter()
                .any(|name| dir.join(name).is_file()),
            vec![dir.join(dataset.name())],
        ),
    };
    match subs.into_iter().find(|sub| sub.is_dir()) {
        Some(sub) if !own => sub,
        _ => dir.to_path_buf(),
    }
}

/// CIFAR-10's binary batches from `dir`, channels-last.
pub fn load_cifar_dir(dir: &Path) -> Result<RawData> {
    if !dir.is_dir() {
        return Err(input_error(format!(
            "data directory {} does not exist or is not a directory",
            dir.display()
        )));
    }
    let (train, test) = cifar::read_dir(dir)?;
    let split = |images: cifar::Images| RawSplit {
        inputs: Inputs::Pixels(images.pixels),
        width: cifar::PIXELS,
        labels: images.labels,
    };
    Ok(RawData {
        train: split(train),
        test: split(test),
        source: dir.display().to_string(),
    })
}

/// Reads the four IDX files from `dir`, raw or gzip-compressed, and checks them.
pub fn load_dir(dir: &Path) -> Result<RawData> {
    if !dir.is_dir() {
        return Err(input_error(format!(
            "data directory {} does not exist or is not a directory",
            dir.display()
        )));
    }
    let train = read_pair(dir, IDX_FILES[0], IDX_FILES[1])?;
    let test = read_pair(dir, IDX_FILES[2], IDX_FILES[3])?;
    Ok(RawData {
        train,
        test,
        source: dir.display().to_string(),
    })
}

fn read_pair(dir: &Path, images_name: &str, labels_name: &str) -> Result<RawSplit> {
    let (images_path, images_bytes) = read_maybe_gz(dir, images_name)?;
    let (labels_path, labels_bytes) = read_maybe_gz(dir, labels_name)?;
    let (count, images) = parse_images(&images_bytes)
        .map_err(|e| input_error(format!("{}: {e}", images_path.display())))?;
    let labels = parse_labels(&labels_bytes)
        .map_err(|e| input_error(format!("{}: {e}", labels_path.display())))?;
    if labels.len() != count {
        return Err(input_error(format!(
            "{} holds {count} images but {} holds {} labels",
            images_path.display(),
            labels_path.display(),
            labels.len()
        )));
    }
    Ok(RawSplit {
        inputs: Inputs::Pixels(images),
        width: IMAGE_PIXELS,
        labels,
    })
}

/// Finds `name` or `name.gz` in `dir` and returns its decompressed bytes.
fn read_maybe_gz(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    let path = if raw.is_file() {
        raw
    } else if gz.is_file() {
        gz
    } else {
        return Err(input_error(format!(
            "missing data file: neither {} nor {} exists",
            raw.display(),
            gz.display()
        )));
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| input_error(format!("cannot read {}: {e}", path.display())))?;
    // Decide by content, not by name: the gzip magic is 1f 8b.
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| input_error(format!("{}: corrupt gzip stream ({e})", path.display())))?;
        Ok((path, out))
    } else {
        Ok((path, bytes))
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses an IDX image file: magic 2051, count, 28, 28, then the pixels.
pub fn parse_images(bytes: &[u8]) -> std::result::Result<(usize, Vec<u8>), String> {
    let header = |i: usize| {
        be_u32(bytes, 4 * i).ok_or_else(|| format!("truncated header ({} bytes)", bytes.len()))
    };
    let magic = header(0)?;
    if magic != IMAGES_MAGIC {
        return Err(format!(
            "wrong magic number {magic} (an IDX image file starts with {IMAGES_MAGIC})"
        ));
    }
    let (count, rows, cols) = (
        header(1)? as usize,
        header(2)? as usize,
        header(3)? as usize,
    );
    if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE) {
        return Err(format!(
            "images are {rows}x{cols}, expected {IMAGE_SIDE}x{IMAGE_SIDE}"
        ));
    }
    let body = &bytes[16..];
    let expected = count * IMAGE_PIXELS;
    if body.len() != expected {
        return Err(format!(
            "{} of pixel data for {count} images of {rows}x{cols}, expected {expected} (truncated or padded file)",
            body.len()
        ));
    }
    Ok((count, body.to_vec()))
}

/// Parses an IDX label file: magic 2049, count, then one byte per label in 0..=9.
pub fn parse_labels(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let header = |i: usize| {
        be_u32(bytes, 4 * i).ok_or_else(|| format!("truncated header ({} bytes)", bytes.len()))
    };
    let magic = header(0)?;
    if magic != LABELS_MAGIC {
        return Err(format!(
            "wrong magic number {magic} (an IDX label file starts with {LABELS_MAGIC})"
        ));
    }
    let count = header(1)? as usize;
    let body = &bytes[8..];
    if body.len() != count {
        return Err(format!(
            "{} labels present, header says {count} (truncated or padded file)",
            body.len()
        ));
    }
    if let Some(i) = body.iter().position(|&l| l as usize >= CLASSES) {
        return Err(format!("label {} at index {i} is outside 0..=9", body[i]));
    }
    Ok(body.to_vec())
}

/// Through candle-datasets: the hub cache first, a download otherwise. The parquet reader in
/// candle-datasets panics on a corrupt file; that panic becomes an error here.
fn load_hub(dataset: DatasetName) -> Result<RawData> {
    let loaded = std::panic::catch_unwind(|| match dataset {
        DatasetName::Mnist => candle_datasets::vision::mnist::load(),
        DatasetName::FashionMnist => candle_datasets::vision::fashion_mnist::load(),
        DatasetName::Cifar10 => candle_datasets::vision::cifar::load(),
        DatasetName::Mnist1d => unreachable!("MNIST-1D is generated, not loaded"),
    });
    let hint = match dataset {
        DatasetName::Cifar10 => {
            "pass --data-dir DIR (the binary batches, data_batch_1.bin ... test_batch.bin) or \
             set SMARTMIXED_DATA_DIR"
        }
        _ => "pass --data-dir DIR (the four IDX files, raw or .gz) or set SMARTMIXED_DATA_DIR",
    };
    let dataset_name = dataset.name();
    let data: Dataset = match loaded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            return Err(input_error(format!(
                "could not load {dataset_name} from the Hugging Face hub (offline or unreachable?): {e}; {hint}"
            )))
        }
        Err(_) => {
            return Err(input_error(format!(
                "the {dataset_name} files in the Hugging Face hub cache could not be decoded; {hint}"
            )))
        }
    };
    let to_split = |images: &Tensor, labels: &Tensor| -> Result<RawSplit> {
        let (images, width) = match dataset {
            DatasetName::Cifar10 => (cifar::from_hub_tensor(images)?, cifar::PIXELS),
            _ => (
                (images * 255.0)?
                    .round()?
                    .to_dtype(DType::U8)?
                    .flatten_all()?
                    .to_vec1::<u8>()?,
                IMAGE_PIXELS,
            ),
        };
        let labels = labels.to_dtype(DType::U8)?.to_vec1::<u8>()?;
        Ok(RawSplit {
            inputs: Inputs::Pixels(images),
            width,
            labels,
        })
    };
    Ok(RawData {
        train: to_split(&data.train_images, &data.train_labels)?,
        test: to_split(&data.test_images, &data.test_labels)?,
        source: format!("hf-hub:{dataset_name}"),
    })
}

/// Stratified split of `labels` into (train, validation) index lists: each class gives the same
/// fraction to validation, with a largest-remainder rule so that the validation set has exactly
/// round(fraction * n) samples (6,000 of MNIST's 60,000). Deterministic for a given seed.
pub fn stratified_split(labels: &[u8], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); CLASSES];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let target = (fraction * labels.len() as f64).round() as usize;
    let exact: Vec<f64> = by_class.iter().map(|c| c.len() as f64 * fraction).collect();
    let mut quota: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..CLASSES).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let short = target.saturating_sub(quota.iter().sum());
    for &c in order.iter().take(short) {
        quota[c] += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (class, mut members) in by_class.into_iter().enumerate() {
        members.shuffle(&mut rng);
        let (v, t) = members.split_at(quota[class].min(members.len()));
        val.extend_from_slice(v);
        train.extend_from_slice(t);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// One part of the data on the device: inputs f32 `[n, width]` (images in [0, 1]), labels u32
/// `[n]`.
#[derive(Clone, Debug)]
pub struct DeviceSplit {
    pub images: Tensor,
    pub labels: Tensor,
}

impl DeviceSplit {
    fn upload(split: &RawSplit, indices: Option<&[usize]>, device: &Device) -> Result<Self> {
        let all: Vec<usize>;
        let indices = match indices {
            Some(i) => i,
            None => {
                all = (0..split.len()).collect();
                &all
            }
        };
        let width = split.width;
        let mut inputs = Vec::with_capacity(indices.len() * width);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let row = i * width..(i + 1) * width;
            match &split.inputs {
                Inputs::Pixels(p) => inputs.extend(p[row].iter().map(|&p| p as f32 / 255.0)),
                Inputs::Values(v) => inputs.extend_from_slice(&v[row]),
            }
            labels.push(split.labels[i] as u32);
        }
        Ok(Self {
            images: Tensor::from_vec(inputs, (indices.len(), width), device)?,
            labels: Tensor::from_vec(labels, indices.len(), device)?,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Train, validation and test sets, on the device for the whole run.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: DeviceSplit,
    pub val: DeviceSplit,
    pub test: DeviceSplit,
    pub source: String,
}

/// Fraction of the training images held out for validation (the reference's 90 / 10).
pub const VALIDATION_FRACTION: f64 = 0.1;

impl Splits {
    pub fn new(raw: &RawData, split_seed: u64, device: &Device) -> Result<Self> {
        let (train_idx, val_idx) =
            stratified_split(&raw.train.labels, VALIDATION_FRACTION, split_seed);
        Ok(Self {
            train: DeviceSplit::upload(&raw.train, Some(&train_idx), device)
                .context("uploading the training set")?,
            val: DeviceSplit::upload(&raw.train, Some(&val_idx), device)
                .context("uploading the validation set")?,
            test: DeviceSplit::upload(&raw.test, None, device).context("uploading the test set")?,
            source: raw.source.clone(),
        })
    }
}

/// A batch must fit in the training set; `what` names the flag or config that set the batch
/// size (and MNIST-1D's message the arguments that set the training set's size).
pub fn check_batch_size(cfg: &TrainConfig, splits: &Splits, what: &str) -> Result<()> {
    if cfg.batch_size > splits.train.len() {
        let made_by = match cfg.dataset {
            DatasetName::Mnist1d => format!(
                ", made by mnist1d num_samples = {} and train_split = {}",
                cfg.mnist1d.num_samples, cfg.mnist1d.train_split
            ),
            _ => String::new(),
        };
        return Err(input_error(format!(
            "{what} {} is larger than the training set ({} samples{made_by})",
            cfg.batch_size,
            splits.train.len()
        )));
    }
    Ok(())
}

/// The order of one epoch's training samples, as a u32 tensor on the device; batches are
/// `index_select`s of it, so no images cross to the host.
pub fn epoch_order(len: usize, rng: &mut ChaCha8Rng, device: &Device) -> Result<Tensor> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    order.shuffle(rng);
    Ok(Tensor::from_vec(order, len, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_images(count: u32, rows: u32, cols: u32, pixels: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [IMAGES_MAGIC, count, rows, cols] {
            b.extend(v.to_be_bytes());
        }
        b.extend((0..pixels).map(|i| (i % 251) as u8));
        b
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(LABELS_MAGIC.to_be_bytes());
        b.extend((labels.len() as u32).to_be_bytes());
        b.extend(labels);
        b
    }

    #[test]
    fn idx_parsers_check_headers_and_lengths() {
        let (n, px) = parse_images(&idx_images(2, 28, 28, 2 * 784)).unwrap();
        assert_eq!((n, px.len(), px[785]), (2, 1568, (785 % 251) as u8));
        assert!(parse_images(&idx_images(2, 28, 28, 2 * 784 - 1))
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_images(&idx_images(2, 32, 32, 2 * 1024))
            .unwrap_err()
            .contains("32x32"));
        assert!(parse_images(&idx_labels(&[1, 2]))
            .unwrap_err()
            .contains("magic"));
        assert!(parse_images(&[0, 0, 8])
            .unwrap_err()
            .contains("truncated header"));
        assert_eq!(
            parse_labels(&idx_labels(&[0, 9, 3])).unwrap(),
            vec![0, 9, 3]
        );
        assert!(parse_labels(&idx_labels(&[0, 10]))
            .unwrap_err()
            .contains("label 10 at index 1"));
        let mut short = idx_labels(&[1, 2, 3]);
        short.pop();
        assert!(parse_labels(&short).unwrap_err().contains("truncated"));
    }

    /// One `--data-dir` for a sweep with a dataset axis: a folder of per-dataset folders.
    #[test]
    fn a_data_dir_of_dataset_folders_serves_each_dataset() {
        let dir = std::env::temp_dir().join(format!("smartmixed-dsdir-{}", std::process::id()));
        let fashion = dir.join("fashion-mnist");
        std::fs::create_dir_all(&fashion).unwrap();
        assert_eq!(dataset_dir(DatasetName::FashionMnist, &dir), fashion);
        // No mnist/ folder: the directory itself (whose error then names the missing file).
        assert_eq!(dataset_dir(DatasetName::Mnist, &dir), dir);
        // A folder with its own IDX files is used as it is, even with a folder of that name.
        std::fs::write(dir.join(format!("{}.gz", IDX_FILES[0])), b"").unwrap();
        assert_eq!(dataset_dir(DatasetName::FashionMnist, &dir), dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_dir_reads_raw_and_gzip_and_names_bad_files() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("smartmixed-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let labels: Vec<u8> = (0..30).map(|i| (i % 10) as u8).collect();
        let write_gz = |name: &str, bytes: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(bytes).unwrap();
            std::fs::write(dir.join(format!("{name}.gz")), enc.finish().unwrap()).unwrap();
        };
        // Train files raw, test files gzip-compressed.
        std::fs::write(dir.join(IDX_FILES[0]), idx_images(30, 28, 28, 30 * 784)).unwrap();
        std::fs::write(dir.join(IDX_FILES[1]), idx_labels(&labels)).unwrap();
        write_gz(IDX_FILES[2], &idx_images(10, 28, 28, 10 * 784));
        write_gz(IDX_FILES[3], &idx_labels(&labels[..10]));
        let data = load_dir(&dir).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (30, 10));
        assert_eq!(data.test.labels, labels[..10]);

        // Counts that differ.
        write_gz(IDX_FILES[3], &idx_labels(&labels[..9]));
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("10 images") && err.contains("9 labels"),
            "{err}"
        );
        // A corrupt gzip stream.
        std::fs::write(
            dir.join(format!("{}.gz", IDX_FILES[3])),
            [0x1f, 0x8b, 8, 0, 1, 2, 3],
        )
        .unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("t10k-labels-idx1-ubyte.gz") && err.contains("corrupt gzip"),
            "{err}"
        );
        // A missing file.
        std::fs::remove_file(dir.join(IDX_FILES[0])).unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("missing data file") && err.contains("train-images-idx3-ubyte"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    /// MNIST-1D comes generated, whatever directory is named: 4,000 training signals of 40
    /// values (3,600 / 400 after the stratified split) and 1,000 test signals, uploaded as they
    /// are (not scaled like pixels).
    #[test]
    fn mnist1d_is_generated_and_split_like_the_images() {
        let raw = load(
            DatasetName::Mnist1d,
            &Mnist1dArgs::default(),
            Some(Path::new("/nonexistent")),
        )
        .unwrap();
        assert_eq!(
            (raw.train.width, raw.train.len(), raw.test.len()),
            (40, 4000, 1000)
        );
        assert!(raw.source.starts_with("generated: mnist1d"));
        let splits = Splits::new(&raw, 42, &Device::Cpu).unwrap();
        assert_eq!(splits.train.images.dims(), &[3600, 40]);
        assert_eq!(splits.val.images.dims(), &[400, 40]);
        assert_eq!(splits.test.images.dims(), &[1000, 40]);
        let Inputs::Values(values) = &raw.test.inputs else {
            panic!("MNIST-1D inputs are values")
        };
        let first: Vec<f32> = splits.test.images.get(0).unwrap().to_vec1().unwrap();
        assert_eq!(first, values[..40]);
    }

    #[test]
    fn stratified_split_keeps_class_proportions_and_is_deterministic() {
        // MNIST's class counts.
        let counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
        let labels: Vec<u8> = counts
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c as u8, n))
            .collect();
        let (train, val) = stratified_split(&labels, 0.1, 42);
        assert_eq!((train.len(), val.len()), (54_000, 6_000));
        let mut seen = vec![false; labels.len()];
        for &i in train.iter().chain(&val) {
            assert!(!seen[i], "index {i} in both parts");
            seen[i] = true;
        }
        for (class, &n) in counts.iter().enumerate() {
            let in_val = val.iter().filter(|&&i| labels[i] as usize == class).count();
            assert!(
                (in_val as f64 - n as f64 * 0.1).abs() <= 1.0,
                "class {class}: {in_val} of {n}"
            );
        }
        assert_eq!(
            stratified_split(&labels, 0.1, 42),
            (train.clone(), val.clone())
        );
        assert_ne!(stratified_split(&labels, 0.1, 7).1, val);
    }
}
