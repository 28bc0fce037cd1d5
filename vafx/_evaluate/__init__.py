"""The paper's evaluation protocols, the V-A regressor and the judges of synthesized images."""
