//! Lines longer than the block are cropped in training, as the original crops them: the
//! corpus counts them and the commands that read data say so, with the way out.

mod common;

use common::cli::*;
use microgpt::data::Corpus;
use microgpt::numerics::rng::Rng;
use microgpt::settings::{DataMode, DataSettings};

fn corpus(path: &Path, mode: DataMode, block_size: usize) -> Corpus {
    let data = DataSettings {
        input: Some(path.to_path_buf()),
        data: mode,
        seed: 42,
        val_frac: 0.0,
    };
    Corpus::load(&data, block_size, &mut Rng::new(42)).unwrap()
}

#[test]
fn lines_of_block_size_characters_or_more_are_counted_and_named() {
    let dir = tmp("crop_warning");
    let path = dir.join("lines.txt");
    // 3, 7, 8 and 12 characters: at block_size 8 a line of 8 or more loses its end (it has
    // one more target than characters: the closing BOS).
    std::fs::write(&path, "abc\nabcdefg\nabcdefgh\nabcdefghijkl\n").unwrap();
    let lines = corpus(&path, DataMode::Lines, 8);
    assert_eq!(lines.cropped_docs(8), 2);
    assert_eq!(lines.cropped_docs(13), 0);
    assert_eq!(lines.crop_warning(13), None);
    let warning = lines.crop_warning(8).unwrap();
    assert!(
        warning.starts_with(&format!(
            "2 of 4 lines of {} are cropped to block_size 8",
            path.display()
        )),
        "{warning}"
    );
    assert!(warning.contains("--data stream") && warning.contains("--block-size 13"));
    // A stream is cut into windows: nothing to crop.
    let stream = corpus(&path, DataMode::Stream, 8);
    assert_eq!((stream.cropped_docs(8), stream.crop_warning(8)), (0, None));

    // gradcheck reads data too, and says so on stderr (stdout stays its table).
    let out = microgpt(&[
        "gradcheck",
        "--input",
        s(&path),
        "--block-size",
        "8",
        "--batches",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("warning: 2 of 4 lines of "), "{err}");
    let quiet = microgpt(&[
        "gradcheck",
        "--input",
        s(&path),
        "--block-size",
        "13",
        "--batches",
        "1",
    ]);
    assert!(
        quiet.status.success() && quiet.stderr.is_empty(),
        "{}",
        text(&quiet.stderr)
    );
}

#[test]
fn tiny_shakespeare_in_lines_mode_says_how_much_is_cropped() {
    let Some(path) = common::shared("data/tinyshakespeare.txt") else {
        return;
    };
    let lines = corpus(&path, DataMode::Lines, 16);
    assert_eq!((lines.cropped_docs(16), lines.num_docs()), (25_327, 32_777));
    assert!(lines
        .crop_warning(16)
        .unwrap()
        .starts_with("25,327 of 32,777 lines of "));
}
