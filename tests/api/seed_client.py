"""The Python client from the seed document (000_489c9d853fd5803a.txt), unchanged except for the
indentation the document lost. Tests drive the API with it exactly as its user would."""
# ruff: noqa
import requests
import json
class ExperimentHubClient:
    def __init__(self, base_url="http://localhost:8010"):
        self.base_url = base_url
    def check_health(self):
        """Check the health of all plugins"""
        response = requests.get(f"{self.base_url}/health")
        return response.json()
    def get_available_experiments(self):
        """Get available experiment types"""
        response = requests.get(f"{self.base_url}/available_experiments")
        return response.json()
    def create_experiment(self, name, experiment_type, config):
        """Create a new experiment"""
        response = requests.post(
            f"{self.base_url}/create_experiment/{name}/{experiment_type}",
            json=config
        )
        return response.json()
    def train(self, name, config):
        """Train an experiment"""
        response = requests.post(
            f"{self.base_url}/{name}/train",
            json=config
        )
        return response.text
    def predict(self, name):
        """Make predictions with an experiment"""
        response = requests.post(f"{self.base_url}/{name}/predict")
        return response.text
    def load(self, name, run_id=None):
        """Load an experiment"""
        if run_id:
            response = requests.post(f"{self.base_url}/{name}/load/{run_id}")
        else:
            response = requests.post(f"{self.base_url}/{name}/load")
        return response.text
    def save(self, name):
        """Save an experiment"""
        response = requests.post(f"{self.base_url}/{name}/save")
        return response.text
    def get_plot(self, name, plot_name):
        """Get a plot from an experiment"""
        response = requests.get(f"{self.base_url}/{name}/plot/{plot_name}")
        return response.json()
    def get_eda_plot(self, name, plot_name):
        """Get an EDA figure from an experiment"""
        response = requests.get(f"{self.base_url}/{name}/plot_eda/{plot_name}")
        return response.json()
    def get_experiments(self):
        """Get experiment names and figure names"""
        response = requests.get(f"{self.base_url}/experiments")
        return response.json()
