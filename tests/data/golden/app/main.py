def main() -> None:
    print("golden")


if __name__ == "__main__":
    main()
