//! Skills, as profiles and projects list them: the same words on both sides,
//! so a search for a skill finds people and projects alike.

use crate::http::FieldError;

/// Lowercased, trimmed, de-duplicated skills (1..=40 characters each, 30 at
/// most); errors name the entry (`skills[2]`) or the list.
pub fn clean(skills: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut clean: Vec<String> = Vec::new();
    for (i, skill) in skills.iter().enumerate() {
        let skill = skill.trim().to_lowercase();
        if !(1..=40).contains(&skill.chars().count()) {
            errors.push(FieldError::new(
                format!("skills[{i}]"),
                "invalid",
                "1 to 40 characters.",
            ));
        } else if !clean.contains(&skill) {
            clean.push(skill);
        }
    }
    if clean.len() > 30 {
        errors.push(FieldError::new("skills", "too_long", "At most 30 skills."));
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skills_are_lowercased_once_each_and_bad_entries_named() {
        let mut errors = Vec::new();
        let skills = ["Rust", " rust ", "", "Go"].map(String::from);
        assert_eq!(clean(&skills, &mut errors), ["rust", "go"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "skills[2]");
    }

    #[test]
    fn more_than_thirty_skills_are_refused() {
        let mut errors = Vec::new();
        let skills: Vec<String> = (0..31).map(|i| format!("s{i}")).collect();
        clean(&skills, &mut errors);
        assert_eq!(errors[0].field, "skills");
    }
}
