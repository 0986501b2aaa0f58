//! TFRecord framing, as TensorBoard's `RecordWriter` writes it: per record the payload's length
//! (u64, little-endian), the masked CRC-32C of those 8 bytes, the payload, the masked CRC-32C of
//! the payload.

use anyhow::{bail, Result};

/// TFRecord's mask of a CRC-32C: rotated right by 15 bits, plus a constant (so that a CRC of
/// data that holds CRCs is not itself a CRC).
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// One framed record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

/// The payloads of concatenated records; a torn or corrupt record is an error that says where.
pub fn unframe(mut bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut payloads = Vec::new();
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    while !bytes.is_empty() {
        let record = payloads.len();
        if bytes.len() < 12 {
            bail!(
                "record {record}: {} bytes left, too few for a header",
                bytes.len()
            );
        }
        if masked_crc32c(&bytes[..8]) != u32_at(bytes, 8) {
            bail!("record {record}: the length's checksum does not match");
        }
        let length = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        if bytes.len() < 16 + length {
            bail!(
                "record {record}: {length} bytes announced, {} present",
                bytes.len() - 12
            );
        }
        let payload = &bytes[12..12 + length];
        if masked_crc32c(payload) != u32_at(bytes, 12 + length) {
            bail!("record {record}: the payload's checksum does not match");
        }
        payloads.push(payload);
        bytes = &bytes[16 + length..];
    }
    Ok(payloads)
}
