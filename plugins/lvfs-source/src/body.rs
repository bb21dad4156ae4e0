//! The metadata file's bytes to XML text: plain, gzip (`firmware.xml.gz`) or zstd
//! (`firmware.xml.zst`), told apart by their magic bytes rather than by the URL, since
//! a mirror may name the file as it likes.

use std::io::Read;

/// Most bytes of XML the plugin decompresses: about what the host's largest body
/// (16 MiB) holds gzip-compressed. The whole LVFS catalog is a few tens of MiB of XML,
/// and reading it takes about four times its size (58 MB of LVFS-like XML took 240 MiB),
/// which the manifest's memory limit (768 MiB) allows for this much. A larger body is
/// refused with a clear error rather than run into that limit.
pub const MAX_XML_BYTES: u64 = 160 << 20;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The XML text of `body`, fetched from `url`; an error names the URL and says what
/// the body is and what went wrong.
pub fn xml(body: Vec<u8>, url: &str) -> Result<String, String> {
    let bytes = if body.starts_with(GZIP_MAGIC) {
        // The trailer's size of the (last) member: a hint, so the buffer is not grown
        // by doubling past what the memory limit allows.
        let hint = body
            .last_chunk::<4>()
            .map_or(0, |size| u64::from(u32::from_le_bytes(*size)));
        // Multi-member: `cat a.gz b.gz` is a valid gzip file too.
        let decoder = flate2::read::MultiGzDecoder::new(&body[..]);
        inflate(decoder, hint, "gzip", url)?
    } else if body.starts_with(ZSTD_MAGIC) {
        let decoder =
            ruzstd::decoding::StreamingDecoder::new_with_max_window_size(&body[..], MAX_XML_BYTES)
                .map_err(|e| format!("{url}: the zstd-compressed body cannot be read: {e}"))?;
        let hint = decoder.decoder.content_size();
        inflate(decoder, hint, "zstd", url)?
    } else {
        body
    };
    String::from_utf8(bytes).map_err(|e| {
        // Where the bad byte is, as the XML positions are given.
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let row = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
        format!("{url}, line {row}, column {col}: not UTF-8 text (AppStream metadata is UTF-8 XML, plain or compressed with gzip or zstd)")
    })
}

/// What `reader` gives, at most [`MAX_XML_BYTES`]; `hint` is the expected size, if known.
fn inflate(reader: impl Read, hint: u64, format: &str, url: &str) -> Result<Vec<u8>, String> {
    // One byte more, so that reading to the end does not grow the buffer.
    let mut out = Vec::with_capacity(usize::try_from(hint.min(MAX_XML_BYTES) + 1).unwrap_or(0));
    reader
        .take(MAX_XML_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{url}: the {format}-compressed body cannot be decompressed: {e}"))?;
    if out.len() as u64 > MAX_XML_BYTES {
        return Err(format!(
            "{url}: the {format}-compressed body holds more than {} MiB of XML, this plugin's limit",
            MAX_XML_BYTES >> 20
        ));
    }
    Ok(out)
}
