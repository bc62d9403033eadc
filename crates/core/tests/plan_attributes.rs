//! `Attributes`, the packed column map the planner compares for every user.

use std::sync::Arc;

use dsync_core::model::Attributes;

fn pairs(items: &[(&str, &str)]) -> Attributes {
    Attributes::from_pairs(
        items
            .iter()
            .map(|(name, value)| (Arc::<str>::from(*name), Box::<str>::from(*value))),
    )
}

#[test]
fn attributes_sorted_by_name() {
    let attributes = pairs(&[
        ("last_name", "Okoro"),
        ("email", "c.okoro@tide.example"),
        ("city", ""),
    ]);

    let items: Vec<(&str, &str)> = attributes.iter().collect();

    assert_eq!(
        items,
        [
            ("city", ""),
            ("email", "c.okoro@tide.example"),
            ("last_name", "Okoro")
        ]
    );
    assert_eq!(attributes.len(), 3);
}

#[test]
fn attributes_get_and_non_empty() {
    let attributes = pairs(&[("city", ""), ("email", "c.okoro@tide.example")]);

    assert_eq!(attributes.get("email"), Some("c.okoro@tide.example"));
    assert_eq!(attributes.get("city"), Some(""));
    assert_eq!(attributes.non_empty("city"), None);
    assert_eq!(attributes.get("missing"), None);
}

#[test]
fn attributes_later_duplicate_wins() {
    let attributes = pairs(&[
        ("team", "Ropes"),
        ("email", "a@tide.example"),
        ("team", "Sails"),
    ]);

    assert_eq!(attributes.get("team"), Some("Sails"));
    assert_eq!(attributes.len(), 2);
}

#[test]
fn attributes_equal_only_with_same_split() {
    let one = pairs(&[("a", "xy"), ("b", "z")]);
    let same = pairs(&[("b", "z"), ("a", "xy")]);
    let shifted = pairs(&[("a", "x"), ("b", "yz")]);

    assert_eq!(one, same);
    assert_ne!(one, shifted);
}

#[test]
fn attributes_empty_and_debug() {
    let empty = Attributes::default();
    let filled = pairs(&[("email", "b@tide.example")]);

    assert!(empty.is_empty());
    assert_eq!(empty.iter().count(), 0);
    assert_eq!(format!("{filled:?}"), r#"{"email": "b@tide.example"}"#);
}
