package org.scalactic

// The part of scalactic that spark-jobserver's Scala job API names (Or, Good, Bad, Every, One,
// Many): scalactic itself is on neither Spark's classpath nor a registry reachable here. A job
// jar must not bundle scalactic (mark it "provided"): these classes come first.

/** A value of one of two kinds: `Good` (the job's data) or `Bad` (its problems). */
sealed abstract class Or[+G, +B] extends Product with Serializable {
  def isGood: Boolean
  def isBad: Boolean = !isGood
  def get: G
  def fold[V](good: G => V, bad: B => V): V
  def map[H](f: G => H): H Or B = fold(value => Good(f(value)), problems => Bad(problems))
  def badMap[C](f: B => C): G Or C = fold(value => Good(value), problems => Bad(f(problems)))
  def flatMap[H, C >: B](f: G => H Or C): H Or C = fold(f, problems => Bad(problems))
  def getOrElse[H >: G](default: => H): H = fold(value => value, _ => default)
  def toOption: Option[G] = fold(Some(_), _ => None)
  def toEither: Either[B, G] = fold(Right(_), Left(_))
}

final case class Good[+G](g: G) extends Or[G, Nothing] {
  def isGood: Boolean = true
  def get: G = g
  def fold[V](good: G => V, bad: Nothing => V): V = good(g)
}

final case class Bad[+B](b: B) extends Or[Nothing, B] {
  def isGood: Boolean = false
  def get: Nothing = throw new NoSuchElementException(s"Bad($b).get")
  def fold[V](good: Nothing => V, bad: B => V): V = bad(b)
}

/** One or more elements. */
sealed abstract class Every[+T] extends Product with Serializable {
  def toVector: Vector[T]
  def head: T = toVector.head
  def length: Int = toVector.length
  def toSeq: Seq[T] = toVector
  def toList: List[T] = toVector.toList
  def iterator: Iterator[T] = toVector.iterator
  def foreach(f: T => Unit): Unit = toVector.foreach(f)
  def map[U](f: T => U): Every[U] = Every.from(toVector.map(f))
  def mkString(separator: String): String = toVector.mkString(separator)
}

object Every {
  def apply[T](first: T, rest: T*): Every[T] = if (rest.isEmpty) One(first) else Many(first, rest.head, rest.tail: _*)
  private[scalactic] def from[T](items: Vector[T]): Every[T] = apply(items.head, items.tail: _*)
}

final case class One[+T](loneElement: T) extends Every[T] {
  def toVector: Vector[T] = Vector(loneElement)
}

final case class Many[+T](firstElement: T, secondElement: T, otherElements: T*) extends Every[T] {
  def toVector: Vector[T] = firstElement +: secondElement +: otherElements.toVector
}
