"""Storage: the warehouse file, versioned tables, the state of runs and versions, the readers' copy."""
