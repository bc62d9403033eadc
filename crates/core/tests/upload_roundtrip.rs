//! Property test: whatever a CSV writer produces (any delimiter, line end
//! and supported encoding, values with quotes, delimiters and line breaks)
//! reads back as the same trimmed values.

use std::io::Cursor;

use dsync_core::report::FileKind;
use dsync_core::snapshot::KindSnapshot;
use dsync_core::upload::{read_snapshot, ReadLimits, Upload};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Person {
    first_name: String,
    last_name: String,
    notes: String,
}

fn value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,;|\t\"\n\r'é€ß-]{0,12}"
}

fn person() -> impl Strategy<Value = Person> {
    (value(), value(), value()).prop_map(|(first_name, last_name, notes)| Person {
        first_name,
        last_name,
        notes,
    })
}

/// Returns what dsync stores for a written value: line ends become `\n`, then the value is trimmed.
fn expected(value: &str) -> String {
    value
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim()
        .to_owned()
}

fn write_csv(people: &[Person], delimiter: u8, terminator: csv::Terminator) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(terminator)
        .from_writer(Vec::new());
    writer
        .write_record(["user_id", "First Name", "last_name", "email", "notes"])
        .unwrap();
    for (index, person) in people.iter().enumerate() {
        let id = format!("{:05}", index + 1);
        let email = format!("person{index}@example.org");
        writer
            .write_record([
                id.as_str(),
                &person.first_name,
                &person.last_name,
                &email,
                &person.notes,
            ])
            .unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}

fn encode(text: &str, encoding: usize) -> Vec<u8> {
    match encoding {
        0 => text.as_bytes().to_vec(),
        1 => [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
        _ => {
            let mut bytes = vec![0xFF, 0xFE];
            for unit in text.encode_utf16() {
                bytes.extend_from_slice(&unit.to_le_bytes());
            }
            bytes
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn written_values_read_back(
        people in proptest::collection::vec(person(), 0..25),
        delimiter in prop::sample::select(vec![b',', b';', b'\t', b'|']),
        terminator in prop::sample::select(vec![
            csv::Terminator::CRLF,
            csv::Terminator::Any(b'\n'),
            csv::Terminator::Any(b'\r'),
        ]),
        encoding in 0usize..3,
    ) {
        let text = write_csv(&people, delimiter, terminator);
        let upload = Upload::with_kind("users.csv", FileKind::Users, Cursor::new(encode(&text, encoding)));
        let snapshot = read_snapshot(vec![upload], &ReadLimits::default()).unwrap();

        let KindSnapshot::Accepted(users) = &snapshot.users else {
            panic!("rejected: {:?}\n{text:?}", snapshot.errors);
        };
        prop_assert_eq!(snapshot.files[0].rows, people.len() as u64);

        for (index, person) in people.iter().enumerate() {
            let id = format!("{:05}", index + 1);
            let first_name = expected(&person.first_name);
            let last_name = expected(&person.last_name);

            if first_name.is_empty() || last_name.is_empty() {
                prop_assert!(users.held.contains(id.as_str()), "row {} should be held", index + 1);
                continue;
            }
            let user = &users.users[id.as_str()];
            prop_assert_eq!(user.attributes.get("first_name"), Some(first_name.as_str()));
            prop_assert_eq!(user.attributes.get("last_name"), Some(last_name.as_str()));
            let notes = expected(&person.notes);
            prop_assert_eq!(user.attributes.get("notes"), Some(notes.as_str()));
        }
    }
}
