//! Image decoding through `load_image` / `decode_image`: EXIF orientation applied, truncated
//! and corrupt files refused with the file named, valid files of every enabled format decoded,
//! and mutated files never panicking.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageEncoder, ImageFormat, Rgb, RgbImage};
use vmunet_data::{decode_image, load_image};

/// 40x24, grey-blue, with a red block in the top-left corner.
fn cornered() -> RgbImage {
    RgbImage::from_fn(40, 24, |x, y| {
        if x < 12 && y < 10 {
            Rgb([230, 20, 20])
        } else {
            Rgb([90, 110, 140])
        }
    })
}

/// A noisy picture whose JPEG has plenty of scan data.
fn textured(w: u32, h: u32) -> RgbImage {
    let mut s = 12345u32;
    RgbImage::from_fn(w, h, |x, y| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let n = (s >> 24) as u8 / 4;
        Rgb([
            (x * 255 / w) as u8 / 2 + n,
            (y * 255 / h) as u8 / 2 + n,
            128 + n / 2,
        ])
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    if format == ImageFormat::Gif {
        DynamicImage::ImageRgb8(img.clone())
            .to_rgba8()
            .write_to(&mut buf, format)
            .unwrap();
    } else {
        img.write_to(&mut buf, format).unwrap();
    }
    buf.into_inner()
}

/// A TIFF structure holding only the orientation tag (what an EXIF chunk starts with).
fn exif_tiff(orientation: u16, little_endian: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if little_endian {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let u32b = |v: u32| {
        if little_endian {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let mut t = Vec::new();
    t.extend_from_slice(if little_endian { b"II" } else { b"MM" });
    t.extend_from_slice(&u16b(42));
    t.extend_from_slice(&u32b(8)); // first IFD
    t.extend_from_slice(&u16b(1)); // one entry
    t.extend_from_slice(&u16b(0x0112)); // Orientation
    t.extend_from_slice(&u16b(3)); // SHORT
    t.extend_from_slice(&u32b(1)); // count
    t.extend_from_slice(&u16b(orientation));
    t.extend_from_slice(&[0, 0]); // value padding
    t.extend_from_slice(&u32b(0)); // no next IFD
    t
}

/// `jpeg` with an EXIF APP1 segment carrying `orientation` inserted after SOI.
fn with_exif(jpeg: &[u8], orientation: u16, little_endian: bool) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(exif_tiff(orientation, little_endian));
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Size and the centre of the red pixels in quarters of the width and height (0..4).
fn red_corner(img: &DynamicImage) -> ((u32, u32), (u32, u32)) {
    let rgb = img.to_rgb8();
    let (mut sx, mut sy, mut n) = (0u32, 0u32, 0u32);
    for (x, y, p) in rgb.enumerate_pixels() {
        if p[0] > 160 && p[1] < 90 {
            sx += x;
            sy += y;
            n += 1;
        }
    }
    assert!(n > 50, "red block found ({n} pixels)");
    let (w, h) = rgb.dimensions();
    ((w, h), (4 * (sx / n) / w, 4 * (sy / n) / h))
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(format!("/data/{name}"))
}

#[test]
fn jpeg_exif_orientation_is_applied() {
    let jpeg = encode(&cornered(), ImageFormat::Jpeg);
    // (orientation, displayed size, quarter holding the block's centre)
    let cases = [
        (1, (40, 24), (0, 0)),
        (2, (40, 24), (3, 0)), // mirrored
        (3, (40, 24), (3, 3)), // rotated 180
        (4, (40, 24), (0, 3)), // flipped
        (5, (24, 40), (0, 0)), // transposed
        (6, (24, 40), (3, 0)), // rotated 90 clockwise
        (7, (24, 40), (3, 3)), // transversed
        (8, (24, 40), (0, 3)), // rotated 270 clockwise
    ];
    for (o, size, quarter) in cases {
        for le in [false, true] {
            let bytes = with_exif(&jpeg, o, le);
            let img = decode_image(&path("photo.jpg"), &bytes).unwrap();
            assert_eq!(
                red_corner(&img),
                (size, quarter),
                "orientation {o} (little endian {le})"
            );
        }
    }
    // No EXIF at all: as stored.
    let img = decode_image(&path("photo.jpg"), &jpeg).unwrap();
    assert_eq!(red_corner(&img), ((40, 24), (0, 0)));
    // An out-of-range orientation value is ignored, as viewers do.
    let img = decode_image(&path("photo.jpg"), &with_exif(&jpeg, 9, false)).unwrap();
    assert_eq!(red_corner(&img), ((40, 24), (0, 0)));
}

#[test]
fn png_and_webp_exif_orientation_is_applied() {
    let img = cornered();
    for (format, name) in [(ImageFormat::Png, "a.png"), (ImageFormat::WebP, "a.webp")] {
        for (o, size, quarter) in [(3, (40, 24), (3, 3)), (6, (24, 40), (3, 0))] {
            let mut buf = Vec::new();
            let (w, h) = img.dimensions();
            let exif = exif_tiff(o, true);
            match format {
                ImageFormat::Png => {
                    let mut e = image::codecs::png::PngEncoder::new(&mut buf);
                    e.set_exif_metadata(exif).unwrap();
                    e.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
                        .unwrap();
                }
                _ => {
                    let mut e = image::codecs::webp::WebPEncoder::new_lossless(&mut buf);
                    e.set_exif_metadata(exif).unwrap();
                    e.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
                        .unwrap();
                }
            }
            let dec = decode_image(&path(name), &buf).unwrap();
            assert_eq!(red_corner(&dec), (size, quarter), "{format:?} {o}");
        }
    }
}

#[test]
fn load_image_applies_orientation_from_a_file() {
    // A photo stored 80x60 and tagged "rotate 90" is displayed 60x80.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("phone.jpg");
    let stored = image::imageops::resize(&cornered(), 80, 60, image::imageops::Nearest);
    std::fs::write(&p, with_exif(&encode(&stored, ImageFormat::Jpeg), 6, false)).unwrap();
    let img = load_image(&p).unwrap();
    assert_eq!(red_corner(&img), ((60, 80), (3, 0)));
}

/// Byte offset just past the SOS header of a baseline JPEG.
fn scan_start(jpeg: &[u8]) -> usize {
    let sos = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("SOS");
    sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]))
}

fn assert_refused(bytes: &[u8], name: &str, what: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let e = load_image(&p)
        .map(|img| format!("decoded {}x{}", img.width(), img.height()))
        .expect_err("refused")
        .to_string();
    assert!(e.contains(name), "{e}");
    for w in what {
        assert!(e.contains(w), "{w:?} in {e}");
    }
    e
}

#[test]
fn truncated_jpeg_is_refused_with_the_file_named() {
    let jpeg = encode(&textured(160, 120), ImageFormat::Jpeg);
    let scan = scan_start(&jpeg);
    assert!(jpeg.len() > scan + 2000, "{} {scan}", jpeg.len());
    // Cut anywhere: in the headers, right after SOS, mid-scan, just before FFD9.
    for cut in [
        1,
        2,
        40,
        scan - 3,
        scan,
        scan + 10,
        jpeg.len() / 2,
        jpeg.len() - 2,
    ] {
        let e = assert_refused(&jpeg[..cut], "cut.jpg", &["truncated"]);
        if cut > 2 {
            assert!(e.contains("FFD9"), "{cut}: {e}");
        }
    }
    // The last byte of FFD9 missing.
    assert_refused(&jpeg[..jpeg.len() - 1], "cut.jpg", &["FFD9"]);
    // Headers kept, most scan data dropped, end-of-image marker restored.
    let mut short = jpeg[..scan + 30].to_vec();
    short.extend_from_slice(&[0xFF, 0xD9]);
    assert_refused(&short, "short.jpg", &["scan data", "160x120"]);
    // No scan at all.
    let mut headers = jpeg[..scan - 14].to_vec();
    headers.extend_from_slice(&[0xFF, 0xD9]);
    assert_refused(&headers, "headers.jpg", &["SOS"]);
    // Not a JPEG after its magic.
    assert_refused(&[0xFF, 0xD8, 0xFF], "magic.jpg", &["FFD9"]);
}

#[test]
fn jpeg_with_trailing_bytes_after_eoi_decodes() {
    let img = textured(64, 48);
    let jpeg = encode(&img, ImageFormat::Jpeg);
    let reference = decode_image(&path("a.jpg"), &jpeg).unwrap().to_rgb8();
    let mut tail = jpeg.clone();
    tail.extend_from_slice(b"\0\0camera trailer\xFF\xD8\xFF\xE1 more");
    let got = decode_image(&path("a.jpg"), &tail).unwrap().to_rgb8();
    assert_eq!(got, reference);
    // Encoded pixels are close to the source (the decoder ran on the real data).
    let err: f64 = got
        .as_raw()
        .iter()
        .zip(img.as_raw())
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum::<f64>()
        / img.as_raw().len() as f64;
    assert!(err < 12.0, "mean abs error {err}");
}

/// Offsets of the PNG chunks of type `kind`.
fn png_chunk(png: &[u8], kind: &[u8; 4]) -> usize {
    let mut pos = 8;
    loop {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        if &png[pos + 4..pos + 8] == kind {
            return pos;
        }
        pos += 12 + len;
    }
}

#[test]
fn corrupt_or_truncated_png_is_refused() {
    let png = encode(&textured(64, 48), ImageFormat::Png);
    let idat = png_chunk(&png, b"IDAT");
    let mut flipped = png.clone();
    flipped[idat + 8 + 20] ^= 0x10;
    assert_refused(&flipped, "flip.png", &["PNG", "IDAT", "CRC"]);
    let iend = png_chunk(&png, b"IEND");
    assert_eq!(iend + 12, png.len());
    assert_refused(&png[..iend], "noend.png", &["IEND", "truncated"]);
    for cut in [10, 30, idat + 5, idat + 100, png.len() - 1] {
        assert_refused(&png[..cut], "cut.png", &["truncated"]);
    }
    // Trailing bytes after IEND are ignored.
    let mut tail = png.clone();
    tail.extend_from_slice(b"junk");
    assert!(decode_image(&path("t.png"), &tail).is_ok());
}

#[test]
fn valid_files_of_every_format_decode_exactly() {
    let img = textured(40, 24);
    for (format, name) in [
        (ImageFormat::Png, "a.png"),
        (ImageFormat::Bmp, "a.bmp"),
        (ImageFormat::Tiff, "a.tiff"),
        (ImageFormat::WebP, "a.webp"),
        (ImageFormat::Pnm, "a.ppm"),
    ] {
        let bytes = encode(&img, format);
        let dec = decode_image(&path(name), &bytes).unwrap().to_rgb8();
        assert_eq!(dec, img, "{format:?}");
        // Truncated copies are refused by the check or the format's decoder.
        for frac in [0.3, 0.9, 0.99] {
            let cut = (bytes.len() as f64 * frac) as usize;
            assert_refused(&bytes[..cut], name, &["cannot decode"]);
        }
    }
    let gif = encode(&cornered(), ImageFormat::Gif);
    assert_eq!(
        red_corner(&decode_image(&path("a.gif"), &gif).unwrap()),
        ((40, 24), (0, 0))
    );
    // Cut inside the pixel data (a GIF missing only its trailer byte holds every pixel).
    for cut in [gif.len() / 3, gif.len() - 10] {
        assert_refused(&gif[..cut], "a.gif", &["cannot decode"]);
    }
}

#[test]
fn mutated_images_never_panic() {
    let jpeg = with_exif(&encode(&textured(48, 32), ImageFormat::Jpeg), 6, false);
    let png = encode(&textured(48, 32), ImageFormat::Png);
    let mut rng = 0x9E37_79B9u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let (mut ok, mut refused) = (0, 0);
    for (name, golden) in [("m.jpg", &jpeg), ("m.png", &png)] {
        for i in 0..300 {
            let mut b = golden.clone();
            match i % 3 {
                0 => b.truncate(next(b.len())),
                1 => {
                    let at = next(b.len());
                    b[at] ^= 1 << next(8);
                }
                _ => {
                    let at = next(b.len());
                    let end = (at + 1 + next(64)).min(b.len());
                    let v = next(256) as u8;
                    b[at..end].fill(v);
                }
            }
            match decode_image(Path::new(name), &b) {
                Ok(img) => {
                    assert!(img.width() > 0 && img.height() > 0);
                    ok += 1;
                }
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains(name) && !e.contains("panic"), "{i}: {e}");
                    refused += 1;
                }
            }
        }
    }
    eprintln!("mutations: {ok} decoded, {refused} refused");
    assert!(refused > 300, "{refused}");
}

/// `../shared/data/isic2017-fullres/images`, or `None` (with a message) when absent.
fn fullres_images() -> Option<PathBuf> {
    vmunet_testdata::shared_with(
        "data/isic2017-fullres/images",
        "real_photo_cut_to_3000_bytes",
    )
    .map(|r| r.join("data/isic2017-fullres/images"))
}

#[test]
fn real_photo_cut_to_3000_bytes_is_refused() {
    let Some(dir) = fullres_images() else { return };
    let mut jpgs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpgs.sort();
    let Some(first) = jpgs.first() else {
        eprintln!("SKIP: no .jpg in {}", dir.display());
        return;
    };
    let whole = load_image(first).unwrap();
    assert!(whole.width() > 100 && whole.height() > 100);
    let bytes = std::fs::read(first).unwrap();
    assert!(bytes.len() > 3000);
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let e = assert_refused(&bytes[..3000], &name, &["truncated", "FFD9"]);
    eprintln!("{e}");
    // The same cut with its end-of-image marker restored: too little scan data.
    let mut patched = bytes[..3000].to_vec();
    patched.extend_from_slice(&[0xFF, 0xD9]);
    let e = assert_refused(&patched, &name, &["scan data", "cut"]);
    eprintln!("{e}");
}
