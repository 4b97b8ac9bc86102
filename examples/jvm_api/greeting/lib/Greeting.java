package greeting.lib;

/** A library class: the persistent-jar example's first jar. */
public class Greeting {
    public static String greet(String who) {
        return "Hello, " + who;
    }
}
