"""The operators' web console (issue 13), served under /_lakenode/console/ on the S3 port."""
