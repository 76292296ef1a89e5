"""Other Ibis backends the same models run on."""
