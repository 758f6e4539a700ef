from setuptools import find_packages, setup

setup(
    name="hf_mentornet",
    version="0.2.0.dev0",
    description="MentorNet (Jiang et al., ICML 2018): learned curricula for training image classifiers on noisy labels",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["hf_mentornet", "hf_mentornet.*"]),
    package_data={"hf_mentornet": ["pretrained/*/*", "templates/*", "metrics/*/*"]},
    install_requires=[
        "torch>=2.4,<=2.14.1",
        "torchvision>=0.19,<=0.29.1",
        "transformers>=5.0,<6",
        "accelerate>=1.0",
        "datasets>=3.0",
        "timm>=1.0",
        "evaluate>=0.4",
        "huggingface_hub>=1.0",
        "safetensors>=0.4",
        "numpy",
        "matplotlib",
        "pyarrow",
        "pyyaml",
        "mlxtend>=0.23",
        "scikit-learn",
    ],
    extras_require={
        "dev": ["pytest>=8", "ruff==0.17.6", "cleanlab>=2.6", "tensorboard"],
    },
    entry_points={"console_scripts": ["hf-mentornet=hf_mentornet.cli:main"]},
)
