"""Stream processing: the circuit tracker (pure core) and the runtimes around it."""
