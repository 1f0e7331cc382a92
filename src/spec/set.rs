//! Rules that span files: what must hold for a whole experiment folder.

use std::collections::HashMap;

use super::error::SpecError;
use super::model::Experiment;

/// Checks a folder's experiments together: ids are unique across files (they key URLs and
/// store records, so two files with one id would share data). Each clash is reported at the
/// later file's `id` and names the earlier one, so both places are in the message.
pub fn check_set(experiments: Vec<Experiment>) -> Result<Vec<Experiment>, Vec<SpecError>> {
    let mut first_by_id: HashMap<&str, &Experiment> = HashMap::with_capacity(experiments.len());
    let mut errors = Vec::new();
    for experiment in &experiments {
        match first_by_id.get(experiment.id.as_str()) {
            Some(first) => errors.push(SpecError::at(
                &experiment.source,
                experiment.id_position,
                format!(
                    "experiment id `{}` is already used by {}:{}; ids must be unique across \
                     the folder, so rename one of them (or delete the copy)",
                    experiment.id,
                    first.source.display(),
                    first.id_position
                ),
            )),
            None => {
                first_by_id.insert(experiment.id.as_str(), experiment);
            }
        }
    }
    if errors.is_empty() {
        Ok(experiments)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::parse_experiment;

    fn experiment(file: &str, id: &str) -> Experiment {
        let text = format!(
            "description: d\nowner: o\nstatus: running\nid: {id}\ndefault_variant: a\n\
             variants: [{{id: a, payload: 1}}, {{id: b, payload: 2}}]\n"
        );
        parse_experiment(Path::new(file), &text).unwrap()
    }

    #[test]
    fn distinct_ids_pass_unchanged_and_in_order() {
        let set = vec![experiment("a.yaml", "one"), experiment("b.yaml", "two")];
        let checked = check_set(set.clone()).unwrap();
        assert_eq!(checked, set);
    }

    #[test]
    fn a_duplicate_id_names_both_files_with_line_and_column() {
        let set = vec![
            experiment("a.yaml", "same"),
            experiment("b.yaml", "other"),
            experiment("c.yaml", "same"),
        ];
        let errors = check_set(set).unwrap_err();
        assert_eq!(errors.len(), 1);
        let err = &errors[0];
        assert_eq!(err.file, Path::new("c.yaml"));
        assert_eq!((err.line, err.column), (4, 5));
        assert!(
            err.message.contains("`same` is already used by a.yaml:4:5"),
            "{err}"
        );
        assert!(err.message.contains("rename"), "{err}");
    }

    #[test]
    fn every_repeat_of_an_id_is_reported() {
        let set = vec![
            experiment("a.yaml", "x"),
            experiment("b.yaml", "x"),
            experiment("c.yaml", "x"),
        ];
        let errors = check_set(set).unwrap_err();
        let files: Vec<_> = errors.iter().map(|e| e.file.clone()).collect();
        assert_eq!(files, vec![Path::new("b.yaml"), Path::new("c.yaml")]);
    }
}
