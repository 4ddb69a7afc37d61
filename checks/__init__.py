"""Static security checks run by `make test`: least privilege and encryption in the template, and a secret scan."""
