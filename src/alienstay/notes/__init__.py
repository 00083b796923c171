"""The notes a workspace's report is made of: the dataset, the tags, the report itself."""
