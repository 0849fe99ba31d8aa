"""IAM for the local stack: evaluating the functions' role policies against the AWS calls they make."""
