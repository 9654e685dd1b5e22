"""The feature contract and everything derived from it: cleaning rules, sklearn and ONNX inputs."""
